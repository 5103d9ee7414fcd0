"""Image sizes, where a Docker engine runs: each build context ``serveml build`` makes, built with
``docker build`` on the Lambda Python base image, then measured as ``docker images`` counts
(10**6 bytes, every layer, the base image's included) and removed.

The base image is the one the container tests use (``scripts/lambda-base-image.sh``: AWS's own
where it can be pulled, else the stand-in with its layout). Without an engine, or without a base
image, nothing is built and the report says so.
"""

from __future__ import annotations

from pathlib import Path

from tests.e2e.docker_support import build_image, engine_available, image_size_mb, remove_image
from tests.e2e.docker_support import find_base_image as _run_base_image_script


def find_base_image() -> tuple[str | None, str]:
    """The base image's name, or None and why there is none."""
    if not engine_available():
        return None, "no Docker engine answers `docker info` (`make docker` starts one where root may)"
    return _run_base_image_script()


class Sizer:
    """Builds each context once, on ``base``, and remembers its image's size by a caller's key."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.base_mb = round(image_size_mb(base), 1)
        self._sizes: dict[str, float] = {}

    def image_mb(self, key: str, context: Path, framework: str) -> float:
        """The size in MB of the image built from ``context`` (a ``serveml build`` output)."""
        if key not in self._sizes:
            tag = f"serveml-bench-{key}:size"
            build_image(context, tag, build_args={"BASE_IMAGE": self.base, "FRAMEWORK": framework})
            try:
                self._sizes[key] = round(image_size_mb(tag), 1)
            finally:
                remove_image(tag)
        return self._sizes[key]


__all__ = ["Sizer", "find_base_image"]
