"""The image's requirements: only what the runtime and this one framework need, pinned.

Pins come from this package's own metadata (``pyproject.toml``: the runtime's dependencies and
one extra per framework), so the image runs what the tests ran. A scikit-learn model is pinned
to the scikit-learn version that pickled it (pickles record it), and a user's requirements.txt is
merged in, with every clash against a pin reported.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from builder.scan import decompress

#: Packages the base image provides, which the image must not install again.
PROVIDED_BY_BASE = frozenset({"awslambdaric"})

#: Packages of a framework's extra that only some models need.
OPTIONAL = {"pandas": "tabular", "skops": "skops"}

#: The CPU build of PyTorch: the CUDA build is several GB and Lambda has no GPU.
TORCH_LOCAL_VERSION = "+cpu"

_SKLEARN_VERSION = re.compile(
    rb"_sklearn_version(?:\x94|q.|r....)?(?:\x8c.|X....|U.)(\d+\.\d+(?:\.\d+)?(?:(?:rc|a|b|\.dev|\.post)\d+)?)",
    re.DOTALL,
)


class RequirementsError(ValueError):
    """A user requirements file that cannot be read or that clashes with the pins."""


@dataclass(slots=True)
class Requirements:
    """The pinned lines of the image, and what the merge had to say."""

    pins: dict[str, Requirement] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def render(self) -> str:
        lines = ["# Written by serveml build: the runtime and one framework, pinned."]
        lines += [str(self.pins[name]) for name in sorted(self.pins)]
        return "\n".join(lines) + "\n"

    def version(self, name: str) -> str | None:
        pin = self.pins.get(canonicalize_name(name))
        if pin is None:
            return None
        for spec in pin.specifier:
            if spec.operator == "==":
                return spec.version
        return None


def package_pins(extra: str | None = None, distribution: str = "serveml") -> dict[str, Requirement]:
    """The exact pins of the runtime (``extra=None``) or of one framework extra."""
    pins: dict[str, Requirement] = {}
    for text in metadata.requires(distribution) or []:
        requirement = Requirement(text)
        marker = requirement.marker
        wanted = marker is None if extra is None else marker is not None and marker.evaluate({"extra": extra})
        if wanted and (extra is None or marker is not None):
            requirement.marker = None
            pins[canonicalize_name(requirement.name)] = requirement
    return pins


def sklearn_version_of(model: Path) -> str | None:
    """The scikit-learn version recorded in a pickled estimator, read from its bytes."""
    data = decompress(model.read_bytes())
    found = _SKLEARN_VERSION.search(data)
    return found.group(1).decode() if found else None


def image_requirements(
    framework: str, *, needs: Iterable[str] = (), sklearn_version: str | None = None
) -> Requirements:
    """The pins for an image of ``framework``; ``needs`` switches on optional packages (``tabular``, ``skops``)."""
    wanted = set(needs)
    result = Requirements()
    for name, pin in package_pins().items():
        if name not in PROVIDED_BY_BASE:
            result.pins[name] = pin
    for name, pin in package_pins(framework).items():
        if OPTIONAL.get(name, "") and OPTIONAL[name] not in wanted:
            continue
        result.pins[name] = pin
    if sklearn_version and "scikit-learn" in result.pins:
        current = result.version("scikit-learn")
        if current != sklearn_version:
            result.pins["scikit-learn"] = Requirement(f"scikit-learn=={sklearn_version}")
            result.notes.append(
                f"scikit-learn pinned to {sklearn_version}, the version that pickled the model "
                f"(this machine has {current})"
            )
    if "torch" in result.pins:
        version = result.version("torch")
        if version and "+" not in version:
            result.pins["torch"] = Requirement(f"torch=={version}{TORCH_LOCAL_VERSION}")
    return result


def merge_user_requirements(base: Requirements, path: Path) -> Requirements:
    """Add a user's requirements.txt; a requirement the pins cannot satisfy is an error naming both."""
    conflicts: list[str] = []
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-"):
            raise RequirementsError(
                f"{path}:{number}: pip options ({line.split()[0]}) are not supported; list packages only"
            )
        try:
            wanted = Requirement(line)
        except InvalidRequirement as exc:
            raise RequirementsError(f"{path}:{number}: {line!r} is not a requirement: {exc}") from exc
        name = canonicalize_name(wanted.name)
        pinned = base.pins.get(name)
        if pinned is None:
            base.pins[name] = wanted
            continue
        version = base.version(name)
        if wanted.specifier and version and not wanted.specifier.contains(version, prereleases=True):
            conflicts.append(f"{wanted} (line {number}) conflicts with the pin {pinned}")
        else:
            base.notes.append(f"{wanted} (line {number}) is satisfied by the pin {pinned}")
    if conflicts:
        raise RequirementsError(f"{path} conflicts with the image's pins: " + "; ".join(conflicts))
    return base
