"""The build context: pure renderings (manifest, SAM resource) and the one function that writes
them, with the runtime, the adapter in use and the model, into a directory."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import frameworks

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
#: The modules of ``frameworks/`` every image needs; the adapter in use is added to them.
FRAMEWORK_CORE = ("__init__.py", "base.py", "detect.py", "py.typed")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def size_of(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def render_manifest(user: dict[str, Any], check: dict[str, Any], model_name: str, sha256: str | None) -> dict[str, Any]:
    """The image's serveml.json: the user's fields, plus what the build learned and the model's hash."""
    manifest = dict(user)
    manifest["framework"] = check["framework"]
    manifest["model_file"] = model_name
    manifest.setdefault("name", Path(model_name).name.split(".")[0])
    manifest.setdefault("version", "1")
    if check.get("contract_known") and "inputs" not in manifest:
        manifest["inputs"] = [{k: s[k] for k in ("name", "dtype", "shape")} for s in check["contract"]["inputs"]]
    manifest["versions"] = {**check.get("versions", {}), **manifest.get("versions", {})}
    if sha256 is not None:
        manifest["sha256"] = sha256
    return manifest


def render_sam_resource(
    *, logical_id: str, context_dir: str, tag: str, framework: str, base_image: str | None, python: str
) -> str:
    """The SAM resource of this model's function, to paste into template.yaml."""
    args = {"FRAMEWORK": framework, "PYTHON_VERSION": python}
    if base_image:
        args["BASE_IMAGE"] = base_image
    build_args = "".join(f"\n        {k}: {json.dumps(v)}" for k, v in args.items())
    return f"""  {logical_id}:
    Type: AWS::Serverless::Function
    Properties:
      PackageType: Image
      MemorySize: !Ref MemorySize
      Timeout: !Ref Timeout
      Architectures:
        - !Ref Architecture
    Metadata:
      Dockerfile: Dockerfile
      DockerContext: {context_dir}
      DockerTag: {tag}
      DockerBuildArgs:{build_args}
"""


def adapter_module(framework: str) -> str:
    module = frameworks.ADAPTERS[frameworks.framework_name(framework)].partition(":")[0]
    return module.rsplit(".", 1)[1] + ".py"


def write_context(
    out: Path,
    *,
    model: Path,
    framework: str,
    manifest: dict[str, Any],
    requirements: str,
    wheels: list[Path],
    extra_files: dict[str, str],
) -> None:
    """Write the build context into ``out`` (replacing what was there), world-readable as Lambda needs."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    shutil.copyfile(DOCKERFILE, out / "Dockerfile")
    (out / "requirements.txt").write_text(requirements)
    shutil.copytree(ROOT / "runtime", out / "runtime", ignore=shutil.ignore_patterns("__pycache__"))
    adapters = out / "frameworks"
    adapters.mkdir()
    for name in (*FRAMEWORK_CORE, adapter_module(framework)):
        shutil.copyfile(ROOT / "frameworks" / name, adapters / name)
    wheelhouse = out / "wheelhouse"
    wheelhouse.mkdir()
    for wheel in wheels:
        _link_or_copy(wheel, wheelhouse / wheel.name)
    model_dir = out / "model"
    model_dir.mkdir()
    if model.is_dir():
        shutil.copytree(model, model_dir / model.name)
    else:
        shutil.copyfile(model, model_dir / model.name)
    (model_dir / "serveml.json").write_text(json.dumps(manifest, indent=2) + "\n")
    for name, text in extra_files.items():
        (out / name).write_text(text)
    _make_readable(out)


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _make_readable(root: Path) -> None:
    # Lambda runs the function as a user that owns none of the image's files
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
