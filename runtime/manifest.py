"""``serveml.json``: the optional manifest beside a model, read strictly.

Every field is optional. A field of the wrong type, or a field the runtime does not know (a typo
such as ``alow_nan``), is an ``INVALID_MANIFEST`` init error naming the field: a silently ignored
setting is worse than a clear refusal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from runtime.contract import Contract
from runtime.errors import InvalidManifest

MANIFEST_NAME = "serveml.json"

_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "framework": (str,),
    "model_file": (str,),
    "version": (str, int, float),
    "training_date": (str,),
    "metrics": (dict,),
    "labels": (dict, list),
    "inputs": (list,),
    "allow_nan": (bool,),
    "max_batch_rows": (int,),
    "trusted": (bool,),
    "sha256": (str,),
    "versions": (dict,),
    "converted_from": (dict,),
}

#: ``converted_from`` (written by ``serveml build --optimize onnx``): the fields it holds, their types,
#: and whether they must be there.
_CONVERTED_FROM_FIELDS: dict[str, tuple[tuple[type, ...], bool]] = {
    "framework": ((str,), True),
    "file": ((str,), True),
    "sha256": ((str,), False),
    "converter": ((str,), True),
    "max_abs_diff": ((float, int), True),
    "tolerance": ((dict,), True),
    "sample_rows": ((int,), False),
}


@dataclass(frozen=True, slots=True)
class Manifest:
    """What ``serveml.json`` says; ``None`` wherever it is silent."""

    path: Path | None = None
    name: str | None = None
    framework: str | None = None
    model_file: str | None = None
    version: str | None = None
    training_date: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    contract: Contract | None = None
    allow_nan: bool = False
    max_batch_rows: int | None = None
    trusted: bool = False
    sha256: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    #: What the model was converted from: framework, file, sha256, converter, max_abs_diff, tolerance.
    converted_from: dict[str, Any] | None = None


def read_manifest(path: Path) -> Manifest:
    """Read and check one manifest file."""
    try:
        raw = orjson.loads(path.read_bytes())
    except OSError as exc:
        raise InvalidManifest(f"cannot read {path}: {exc.strerror or exc}", path=str(path)) from exc
    except orjson.JSONDecodeError as exc:
        raise InvalidManifest(f"{path} is not valid JSON: {exc}", path=str(path)) from exc
    return parse_manifest(raw, path)


def parse_manifest(raw: Any, path: Path | None = None) -> Manifest:
    """Check a decoded manifest and return it as a ``Manifest``."""
    where = str(path) if path else "manifest"
    if not isinstance(raw, dict):
        raise InvalidManifest(f"{where} must hold a JSON object, got {type(raw).__name__}", path=where)
    unknown = sorted(set(raw) - set(_FIELD_TYPES))
    if unknown:
        raise InvalidManifest(
            f"{where}: unknown field(s) {', '.join(unknown)}; known fields: {', '.join(_FIELD_TYPES)}",
            path=where,
            unknown=unknown,
        )
    for key, value in raw.items():
        expected = _FIELD_TYPES[key]
        # bool is an int subclass: max_batch_rows: true must not pass as 1
        if not isinstance(value, expected) or (isinstance(value, bool) and bool not in expected):
            names = " or ".join(t.__name__ for t in expected)
            raise InvalidManifest(
                f"{where}: field {key!r} must be {names}, got {type(value).__name__}",
                path=where,
                field=key,
            )
    max_rows = raw.get("max_batch_rows")
    if max_rows is not None and max_rows < 1:
        raise InvalidManifest(f"{where}: max_batch_rows must be at least 1, got {max_rows}", path=where)
    return Manifest(
        path=path,
        name=raw.get("name"),
        framework=raw.get("framework"),
        model_file=raw.get("model_file"),
        version=None if raw.get("version") is None else str(raw["version"]),
        training_date=raw.get("training_date"),
        metrics=raw.get("metrics", {}),
        labels=_labels(raw.get("labels"), where),
        contract=_contract(raw.get("inputs"), where),
        allow_nan=raw.get("allow_nan", False),
        max_batch_rows=max_rows,
        trusted=raw.get("trusted", False),
        sha256=raw.get("sha256"),
        versions={str(k): str(v) for k, v in raw.get("versions", {}).items()},
        converted_from=_converted_from(raw.get("converted_from"), where),
    )


def _converted_from(value: dict[str, Any] | None, where: str) -> dict[str, Any] | None:
    if value is None:
        return None
    unknown = sorted(set(value) - set(_CONVERTED_FROM_FIELDS))
    if unknown:
        raise InvalidManifest(
            f"{where}: converted_from: unknown field(s) {', '.join(unknown)}; "
            f"known fields: {', '.join(_CONVERTED_FROM_FIELDS)}",
            path=where,
            unknown=unknown,
        )
    for key, (expected, required) in _CONVERTED_FROM_FIELDS.items():
        if key not in value:
            if required:
                raise InvalidManifest(f"{where}: converted_from is missing {key!r}", path=where, field=key)
            continue
        item = value[key]
        if not isinstance(item, expected) or isinstance(item, bool):
            names = " or ".join(t.__name__ for t in expected)
            raise InvalidManifest(
                f"{where}: converted_from.{key} must be {names}, got {type(item).__name__}",
                path=where,
                field=f"converted_from.{key}",
            )
    tolerance = value["tolerance"]
    bad = sorted(set(tolerance) ^ {"rtol", "atol"}) or [
        k for k in ("rtol", "atol") if not isinstance(tolerance[k], float | int) or isinstance(tolerance[k], bool)
    ]
    if bad:
        raise InvalidManifest(
            f"{where}: converted_from.tolerance must hold exactly rtol and atol, both numbers; wrong: {', '.join(bad)}",
            path=where,
            field="converted_from.tolerance",
        )
    return dict(value)


def _labels(value: dict[str, Any] | list[Any] | None, where: str) -> dict[str, str]:
    if value is None:
        return {}
    items = enumerate(value) if isinstance(value, list) else value.items()
    return {str(k): str(v) for k, v in items}


def _contract(items: list[Any] | None, where: str) -> Contract | None:
    if items is None:
        return None
    if not items:
        raise InvalidManifest(f"{where}: inputs must list at least one input", path=where)
    for i, item in enumerate(items):
        missing = [k for k in ("name", "dtype", "shape") if not isinstance(item, dict) or k not in item]
        if missing:
            raise InvalidManifest(f"{where}: inputs[{i}] is missing {', '.join(missing)}", path=where)
    try:
        return Contract.from_json(items)
    except (TypeError, ValueError) as exc:
        raise InvalidManifest(f"{where}: inputs: {exc}", path=where) from exc
