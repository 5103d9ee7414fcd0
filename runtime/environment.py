"""Lambda's realities, set before any framework is imported.

The task root is read-only and only /tmp is writable, so HOME and the frameworks' cache
directories point there. Lambda gives one vCPU per 1,769 MB of memory; thread pools sized to the
host's cores instead would oversubscribe the share and slow every prediction down.
"""

from __future__ import annotations

import math
import os
from collections.abc import MutableMapping

#: Memory (MB) per vCPU in Lambda.
MB_PER_VCPU = 1769

_CACHE_DIRS = {
    "XDG_CACHE_HOME": "cache",
    "TORCH_HOME": "torch",
    "KERAS_HOME": "keras",
    "MPLCONFIGDIR": "matplotlib",
    "HF_HOME": "huggingface",
    "NUMBA_CACHE_DIR": "numba",
}

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS")


def vcpu_share(memory_mb: int, cpu_count: int) -> int:
    """The vCPUs Lambda grants ``memory_mb`` of memory, at most the cores the machine has."""
    return max(1, min(math.ceil(memory_mb / MB_PER_VCPU), cpu_count))


def memory_limit_mb(environ: MutableMapping[str, str] = os.environ) -> int:
    return int(environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE") or 3008)


def prepare(environ: MutableMapping[str, str] = os.environ) -> int:
    """Point HOME and caches at /tmp and size thread pools; return the thread count to use.

    Values the user set are kept: this only fills in what is missing (HOME is replaced only when
    it is missing or not writable).
    """
    tmp = environ.get("TMPDIR") or "/tmp"  # noqa: S108 - Lambda's only writable directory
    home = environ.get("HOME")
    if not home or not os.access(home, os.W_OK):
        environ["HOME"] = tmp
    for var, sub in _CACHE_DIRS.items():
        environ.setdefault(var, os.path.join(tmp, "serveml", sub))
    threads = int(environ.get("SERVEML_THREADS") or vcpu_share(memory_limit_mb(environ), os.cpu_count() or 1))
    for var in _THREAD_VARS:
        environ.setdefault(var, str(threads))
    environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
    # joblib would start worker processes through /dev/shm, which Lambda does not have
    environ.setdefault("JOBLIB_MULTIPROCESSING", "0")
    environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return threads


def configured_memory_mb(environ: MutableMapping[str, str] = os.environ) -> int | None:
    """The function's memory size when Lambda (or ``serveml serve``) says it, else None."""
    value = environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
    try:
        return int(value) if value else None
    except ValueError:
        return None


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS; False where it cannot be."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        return False
    return True


def peak_rss_bytes() -> int | None:
    """VmHWM: the peak resident memory since start, or since the last ``reset_peak_rss``."""
    try:
        with open("/proc/self/status", "rb") as handle:
            for line in handle:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None
