"""Every wheel the image installs, downloaded on the host for the image's platform, so that the
image build needs no network and installs exactly these versions."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

#: Platform tags pip may take for each Lambda architecture: manylinux up to glibc 2.28.
PLATFORMS = {
    "x86_64": ["manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_24_x86_64", "manylinux_2_28_x86_64"],
    "arm64": ["manylinux2014_aarch64", "manylinux_2_17_aarch64", "manylinux_2_24_aarch64", "manylinux_2_28_aarch64"],
}

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
    for platform in PLATFORMS[arch]:
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
