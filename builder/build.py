"""``serveml build``: a model file becomes a small, pinned container build context.

Each step prints one progress line; any refusal is a ``BuildError`` whose message a user can act
on ("Model validation failed: ...", "Unsupported framework: ...", "File too large: ...").
"""

from __future__ import annotations

import json
import re
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from builder import scan as pickle_scan
from builder.check import CheckFailed, check_model
from builder.context import render_manifest, render_sam_resource, sha256_of, size_of, write_context
from builder.optimize import DEFAULT_TOLERANCE, OptimizeError, Tolerance, convert_to_onnx
from builder.requirements import (
    Requirements,
    RequirementsError,
    image_requirements,
    merge_user_requirements,
    sklearn_version_of,
)
from builder.wheels import WheelsError, download, torch_wheel_hint
from frameworks import framework_name
from frameworks.detect import detect_framework
from runtime.contract import Contract
from runtime.errors import ServeMLError
from runtime.manifest import MANIFEST_NAME, read_manifest
from runtime.service import locate

#: The guide's limit for what a user uploads: model plus requirements.
DEFAULT_MAX_SIZE_MB = 250.0
#: What ``--optimize`` can convert a model to.
OPTIMIZE_TARGETS = ("onnx",)


class BuildError(Exception):
    """A build that must stop, with the reason to show the user."""


@dataclass(slots=True)
class BuildOptions:
    model: Path
    out: Path = Path(".serveml/build")
    requirements: Path | None = None
    framework: str = "auto"
    tag: str | None = None
    wheelhouse: Path | None = None
    python: str = "3.11"
    arch: str = "x86_64"
    trust: bool = False
    sample: Path | None = None
    max_size_mb: float = DEFAULT_MAX_SIZE_MB
    base_image: str | None = None
    #: "onnx": convert the model at build time and keep the conversion only if it predicts the same.
    optimize: str | None = None
    #: How close the converted model's predictions must be to the original's.
    tolerance: Tolerance = DEFAULT_TOLERANCE


@dataclass(slots=True)
class BuildResult:
    out: Path
    framework: str
    tag: str
    versions: dict[str, str]
    requirements: str
    context_mb: float
    packages_mb: float
    sam_resource: str
    notes: list[str] = field(default_factory=list)
    #: What the model was converted from (``--optimize``), as recorded in serveml.json.
    converted_from: dict[str, Any] | None = None


Echo = Callable[[str], None]


def build(options: BuildOptions, echo: Echo = print) -> BuildResult:
    """Run every step; print progress with ``echo``; return what was built."""
    if options.optimize is not None and options.optimize not in OPTIMIZE_TARGETS:
        raise BuildError(f"--optimize {options.optimize}: unknown target; choose from {', '.join(OPTIMIZE_TARGETS)}")
    steps = _Steps(echo, total=8 if options.optimize else 7)
    model_path = options.model.resolve()
    if not model_path.exists():
        raise BuildError(f"Model not found: {options.model}")
    try:
        model, user_manifest = _user_model(model_path)
    except ServeMLError as error:
        raise BuildError(f"Model validation failed: {error.message}") from error

    with steps("Checking size"):
        steps.detail(_check_size(model, options))
    with steps("Detecting framework"):
        framework = _framework(model, user_manifest, options.framework)
        steps.detail(framework)
    with steps("Scanning for code that runs on load"):
        steps.detail(_scan(model, options.trust))
    with tempfile.TemporaryDirectory(prefix="serveml-") as scratch:
        work = Path(scratch)
        with steps("Validating the model in a clean process"):
            staged = _stage(model, user_manifest, framework, options.trust, work / "original")
            try:
                report = check_model(staged, sample=options.sample)
            except CheckFailed as error:
                raise BuildError(f"Model validation failed: {error}") from error
            steps.detail(f"predicted {_preview(report['response'])} in a fresh interpreter")
        notes: list[str] = []
        converted_from: dict[str, Any] | None = None
        trust = options.trust
        if options.optimize:
            with steps("Converting to ONNX"):
                outcome = _optimize(
                    model,
                    staged,
                    framework=framework,
                    report=report,
                    user_manifest=user_manifest,
                    options=options,
                    work=work,
                )
                if isinstance(outcome, str):
                    notes.append(f"--optimize onnx kept the original {framework} model: {outcome}")
                    steps.detail(f"kept the original: {outcome}")
                else:
                    onnx_model, report, converted_from, described = outcome
                    model, framework, trust = onnx_model, "onnx", False
                    user_manifest = {k: v for k, v in user_manifest.items() if k != "trusted"}
                    steps.detail(described)
        result = _finish_build(
            steps,
            model=model,
            framework=framework,
            report=report,
            user_manifest=user_manifest,
            options=options,
            trust=trust,
            converted_from=converted_from,
        )
    result.notes = notes + result.notes
    return result


def _finish_build(
    steps: _Steps,
    *,
    model: Path,
    framework: str,
    report: dict[str, Any],
    user_manifest: dict[str, Any],
    options: BuildOptions,
    trust: bool,
    converted_from: dict[str, Any] | None,
) -> BuildResult:
    with steps("Pinning requirements"):
        requirements = _requirements(model, framework, report, options)
        steps.detail(", ".join(str(p) for p in requirements.pins.values()))
    with steps("Collecting wheels for the image"):
        wheels = _wheels(requirements, framework, options)
        packages_mb = sum(_unpacked_mb(w) for w in wheels)
        steps.detail(f"{len(wheels)} wheels, {packages_mb:.0f} MB installed")
    with steps("Writing the build context"):
        manifest = render_manifest(user_manifest, report, model.name, None if model.is_dir() else sha256_of(model)) | (
            {"trusted": True} if trust else {}
        )
        if converted_from is not None:
            manifest["converted_from"] = converted_from
        tag = options.tag or _default_tag(manifest)
        sam = render_sam_resource(
            logical_id="ModelFunction",
            context_dir=str(options.out),
            tag=tag.rpartition(":")[2] if ":" in tag else "latest",
            framework=framework,
            base_image=options.base_image,
            python=options.python,
        )
        write_context(
            options.out,
            model=model,
            framework=framework,
            manifest=manifest,
            requirements=requirements.render(),
            wheels=wheels,
            extra_files={"sam-resource.yaml": sam},
        )
        context_mb = size_of(options.out) / 1e6
        steps.detail(f"{options.out} ({context_mb:.1f} MB)")
    return BuildResult(
        out=options.out,
        framework=framework,
        tag=tag,
        versions=report["versions"],
        requirements=requirements.render(),
        context_mb=context_mb,
        packages_mb=packages_mb,
        sam_resource=sam,
        notes=requirements.notes,
        converted_from=converted_from,
    )


def summary(result: BuildResult, base_image: str | None) -> str:
    """The closing lines of ``serveml build``."""
    versions = ", ".join(f"{k} {v}" for k, v in result.versions.items())
    base = base_image or "public.ecr.aws/lambda/python"
    lines = [
        "",
        f"Built context {result.out} for a {result.framework} model ({versions})",
        f"  context: {result.context_mb:.1f} MB; packages installed in the image: {result.packages_mb:.0f} MB",
        f"  expected image size: {base} + {result.packages_mb:.0f} MB",
        *_converted_lines(result.converted_from),
        *(f"  note: {note}" for note in result.notes),
        "",
        "Next:",
        f"  docker build --network host -t {result.tag} {result.out}",
        f"  docker run -p 9000:8080 {result.tag}",
        "  curl -X POST http://localhost:9000/2015-03-31/functions/function/invocations -d @request.json",
        "",
        f"SAM resource (also in {result.out / 'sam-resource.yaml'}):",
        result.sam_resource,
    ]
    return "\n".join(lines)


def _converted_lines(entry: dict[str, Any] | None) -> list[str]:
    if entry is None:
        return []
    tolerance = Tolerance(**entry["tolerance"])
    return [
        f"  converted from the {entry['framework']} model {entry['file']} by {entry['converter']}: "
        f"max abs diff {entry['max_abs_diff']:.2g} on {entry['sample_rows']} sample rows (tolerance {tolerance}); "
        "the image carries onnxruntime only"
    ]


class _Steps:
    """Numbered progress lines: "[2/7] Detecting framework ... sklearn (0.0 s)"."""

    def __init__(self, echo: Echo, total: int) -> None:
        self.echo, self.total, self.number, self.note = echo, total, 0, ""

    def __call__(self, title: str) -> _Steps:
        self.number += 1
        self.title = title
        return self

    def detail(self, note: str) -> None:
        self.note = note

    def __enter__(self) -> None:
        self.started = time.perf_counter()
        self.note = ""

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        took = time.perf_counter() - self.started
        outcome = "failed" if error else (self.note or "ok")
        self.echo(f"[{self.number}/{self.total}] {self.title} ... {outcome} ({took:.1f} s)")


def _user_model(path: Path) -> tuple[Path, dict[str, Any]]:
    model, _ = locate(path)
    manifest_path = (path if path.is_dir() and not (path / "saved_model.pb").exists() else model.parent) / MANIFEST_NAME
    raw: dict[str, Any] = {}
    if manifest_path.is_file():
        read_manifest(manifest_path)  # checks it
        raw = json.loads(manifest_path.read_text())
    return model, raw


def _check_size(model: Path, options: BuildOptions) -> str:
    model_bytes = size_of(model)
    extra = options.requirements.stat().st_size if options.requirements else 0
    total_mb = (model_bytes + extra) / 1e6
    if total_mb > options.max_size_mb:
        parts = f"{model.name} is {model_bytes / 1e6:.1f} MB"
        if options.requirements:
            parts += f" and {options.requirements.name} {extra / 1e3:.1f} KB"
        raise BuildError(
            f"File too large: {parts}, {total_mb:.1f} MB in all; the limit is {options.max_size_mb:.0f} MB. "
            "Compress the model (joblib compress=3, or gzip a pickle) or prune it"
        )
    return f"{total_mb:.2f} MB of {options.max_size_mb:.0f} MB"


def _framework(model: Path, manifest: dict[str, Any], requested: str) -> str:
    try:
        if requested != "auto":
            return framework_name(requested)
        if manifest.get("framework"):
            return framework_name(str(manifest["framework"]))
        return detect_framework(model)
    except ServeMLError as error:
        raise BuildError(f"Unsupported framework: {error.message}") from error


def _scan(model: Path, trust: bool) -> str:
    if model.is_dir() or not pickle_scan.is_pickle_based(model):
        return "not a pickle: nothing runs on load"
    try:
        report = pickle_scan.scan(model)
    except (ValueError, EOFError, OSError, zipfile.BadZipFile) as exc:
        raise BuildError(f"Model validation failed: {model.name} is not a readable pickle ({exc})") from exc
    if report.safe:
        return f"{len(report.globals)} imports, all allowed"
    named = ", ".join(sorted({str(f) for f in report.refused}))
    if trust:
        return f"trusted by --trust despite: {named}"
    raise BuildError(
        f"Refusing {model.name}: loading it would import {named}, which can run code on this machine and in "
        "Lambda. If you made this file yourself and trust it, pass --trust"
    )


def _stage(model: Path, manifest: dict[str, Any], framework: str, trust: bool, stage: Path) -> Path:
    """The model as the image will hold it: beside a manifest that names its framework."""
    stage.mkdir(parents=True, exist_ok=True)
    (stage / model.name).symlink_to(model, target_is_directory=model.is_dir())
    staged = {k: v for k, v in manifest.items() if k != "sha256"}
    staged |= {"framework": framework, "model_file": model.name} | ({"trusted": True} if trust else {})
    (stage / MANIFEST_NAME).write_text(json.dumps(staged))
    return stage


def _optimize(
    model: Path,
    staged: Path,
    *,
    framework: str,
    report: dict[str, Any],
    user_manifest: dict[str, Any],
    options: BuildOptions,
    work: Path,
) -> str | tuple[Path, dict[str, Any], dict[str, Any], str]:
    """Convert the model to ONNX and validate the result as the original was validated.

    Returns the reason the original is kept, or the ONNX model, its check report, the manifest's
    ``converted_from`` entry and the step's detail line."""
    if framework == "onnx":
        return "it is already an ONNX model"
    inputs = report["contract"]["inputs"]
    known = report.get("contract_known") and all(spec["shape"] is not None for spec in inputs)
    contract = Contract.from_json(inputs, source="model") if known else Contract.unknown()
    try:
        conversion = convert_to_onnx(staged, framework, contract, work / "onnx", tolerance=options.tolerance)
    except OptimizeError as error:
        return str(error)
    onnx_model = conversion.onnx_path
    manifest = {k: v for k, v in user_manifest.items() if k != "trusted"}
    try:
        onnx_report = check_model(
            _stage(onnx_model, manifest, "onnx", False, work / "converted"), sample=options.sample
        )
    except CheckFailed as error:
        return f"the converted model failed validation: {error}"
    entry = conversion.manifest_entry(model.name, None if model.is_dir() else sha256_of(model))
    return onnx_model, onnx_report, entry, f"{conversion.describe()}, validated in a fresh interpreter"


def _requirements(model: Path, framework: str, report: dict[str, Any], options: BuildOptions) -> Requirements:
    needs = set()
    if framework == "sklearn" and report["contract"].get("tabular"):
        needs.add("tabular")
    if model.name.lower().endswith(".skops"):
        needs.add("skops")
    version = sklearn_version_of(model) if framework == "sklearn" and model.is_file() else None
    result = image_requirements(framework, needs=needs, sklearn_version=version)
    if options.requirements:
        try:
            result = merge_user_requirements(result, options.requirements)
        except RequirementsError as error:
            raise BuildError(str(error)) from error
    return result


def _wheels(requirements: Requirements, framework: str, options: BuildOptions) -> list[Path]:
    with tempfile.TemporaryDirectory(prefix="serveml-req-") as scratch:
        listing = Path(scratch) / "requirements.txt"
        listing.write_text(requirements.render())
        try:
            return download(
                listing,
                arch=options.arch,
                python=options.python,
                find_links=[options.wheelhouse] if options.wheelhouse else [],
            )
        except WheelsError as error:
            hint = f"; {torch_wheel_hint(options.python, options.arch)}" if framework == "pytorch" else ""
            raise BuildError(f"{error}{hint}") from error


def _unpacked_mb(wheel: Path) -> float:
    with zipfile.ZipFile(wheel) as archive:
        return sum(info.file_size for info in archive.infolist()) / 1e6


def _default_tag(manifest: dict[str, Any]) -> str:
    name = re.sub(r"[^a-z0-9_.-]+", "-", str(manifest.get("name", "model")).lower()).strip("-.") or "model"
    version = re.sub(r"[^A-Za-z0-9_.-]+", "-", str(manifest.get("version", "latest"))) or "latest"
    return f"serveml-{name}:{version}"


def _preview(response: dict[str, Any]) -> str:
    text = json.dumps(response.get("predictions", response.get("outputs")))
    return text if len(text) <= 60 else text[:57] + "..."


__all__ = ["BuildError", "BuildOptions", "BuildResult", "build", "summary"]
