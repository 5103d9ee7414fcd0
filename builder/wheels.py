"""Every wheel the image installs, downloaded on the host for the image's platform, so that the
image build needs no network and installs exactly these versions."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

#: The newest glibc the image may need: Debian bookworm and Amazon Linux 2023 have more, and
#: manylinux_2_28 is what numpy, torch and onnxruntime publish.
MAX_GLIBC_MINOR = 28


def platforms(arch: str) -> list[str]:
    """Every manylinux tag pip may take for a Lambda architecture, up to glibc 2.MAX_GLIBC_MINOR."""
    machine = {"x86_64": "x86_64", "arm64": "aarch64"}[arch]
    legacy = ["manylinux2014"] + (["manylinux2010", "manylinux1"] if machine == "x86_64" else [])
    tags = [f"manylinux_2_{minor}_{machine}" for minor in range(17, MAX_GLIBC_MINOR + 1)]
    return tags + [f"{name}_{machine}" for name in legacy]


_SAVED = re.compile(r"^\s*(?:Saved|File was already downloaded) (.+\.whl)\s*$", re.MULTILINE)


class WheelsError(RuntimeError):
    """pip could not find wheels for every requirement on the image's platform."""


def cache_dir(arch: str, python: str) -> Path:
    base = Path(os.environ.get("SERVEML_CACHE") or Path.home() / ".cache" / "serveml")
    return base / "wheels" / f"cp{python.replace('.', '')}-{arch}"


def download(requirements: Path, *, arch: str, python: str, find_links: list[Path]) -> list[Path]:
    """Download (or reuse from the cache) the wheels ``requirements`` resolves to; return their paths."""
    target = cache_dir(arch, python)
    target.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--progress-bar", "off"]
    argv += ["--only-binary=:all:", "--python-version", python, "--implementation", "cp", "-d", str(target)]
    for platform in platforms(arch):
        argv += ["--platform", platform]
    for folder in find_links:
        argv += ["--find-links", str(folder)]
    argv += ["-r", str(requirements)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=1800, check=False)
    if done.returncode != 0:
        reason = [line for line in done.stderr.splitlines() if "ERROR" in line] or done.stderr.splitlines()[-3:]
        raise WheelsError(
            f"pip found no {arch} wheels for Python {python} for every requirement: " + " ".join(reason).strip()
        )
    found = [Path(p) if Path(p).is_absolute() else target / Path(p).name for p in _SAVED.findall(done.stdout)]
    return sorted({target / p.name for p in found})


def torch_wheel_hint(python: str, arch: str) -> str:
    machine = "x86_64" if arch == "x86_64" else "aarch64"
    return (
        f"PyTorch needs its CPU wheel (torch-2.13.0+cpu, cp{python.replace('.', '')}, {machine}): "
        "download it once with `pip download torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu "
        "--no-deps -d WHEELHOUSE` and pass --wheelhouse WHEELHOUSE"
    )
