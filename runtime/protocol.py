"""Request protocols: the guide's ``data``, ``instances`` rows, and Open Inference Protocol v2.

``read`` turns a decoded request body into checked input arrays (through ``runtime.validation``);
``render`` turns a prediction into the response of the same protocol. Neither knows how the
request arrived (``runtime.transport``) or which framework answers (``frameworks``).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import orjson

from frameworks.base import Prediction
from runtime import validation
from runtime.contract import Contract, TensorSpec, dtype_name
from runtime.errors import FeatureMismatch, InvalidInput, ShapeMismatch

Array = np.ndarray[Any, Any]

_BODY_KEYS = {"data", "instances", "inputs"}
_OPTION_KEYS = {"probabilities", "parameters", "id", "outputs"}

#: Open Inference Protocol v2 datatype <-> contract dtype.
V2_DATATYPES: dict[str, str] = {
    "BOOL": "bool",
    "UINT8": "uint8",
    "UINT16": "uint16",
    "UINT32": "uint32",
    "UINT64": "uint64",
    "INT8": "int8",
    "INT16": "int16",
    "INT32": "int32",
    "INT64": "int64",
    "FP16": "float16",
    "FP32": "float32",
    "FP64": "float64",
    "BYTES": "string",
}
_V2_NAMES = {dtype: name for name, dtype in V2_DATATYPES.items()}


@dataclass(frozen=True, slots=True)
class Limits:
    """What a request may hold, from the manifest and environment."""

    allow_nan: bool = False
    max_batch_rows: int | None = None


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs microseconds per request
class Request:
    """A checked request: its protocol, input arrays keyed by contract name, and options."""

    protocol: str
    inputs: dict[str, Array]
    rows: int
    probabilities: bool = False
    request_id: str | None = None


def read(body: Any, contract: Contract, limits: Limits) -> Request:
    """Check a decoded request body against the contract; raise a ``RequestError`` on any problem."""
    if not isinstance(body, dict):
        raise InvalidInput(
            f"the request must be a JSON object with one of {sorted(_BODY_KEYS)}, got {validation.json_type(body)}",
            got=validation.json_type(body),
        )
    present = _BODY_KEYS & body.keys()
    unknown = sorted(set(body) - _BODY_KEYS - _OPTION_KEYS)
    if len(present) != 1 or unknown:
        raise InvalidInput(
            f"the request must hold exactly one of 'data', 'instances' or 'inputs'; got keys {sorted(body)}",
            keys=sorted(body),
            unknown=unknown,
        )
    probabilities = _probabilities(body)
    if "inputs" in body:
        inputs = _read_v2(body["inputs"], contract, limits)
        protocol = "v2"
    elif "instances" in body:
        inputs = _read_rows(body["instances"], contract, limits, single_row=False, field="instances")
        protocol = "instances"
    else:
        inputs = _read_rows(body["data"], contract, limits, single_row=True, field="data")
        protocol = "data"
    rows = validation.check_batch(inputs, limits.max_batch_rows)
    request_id = body.get("id")
    return Request(protocol, inputs, rows, probabilities, request_id if isinstance(request_id, str) else None)


class FastSpec(NamedTuple):
    """What ``read_fast`` needs of the one input, worked out once at init."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    width: int  # values per row for [-1, n] inputs (-1: any); 0 for inputs of more axes
    bound: float  # the largest finite value of the dtype


#: Up to this many values a request is checked value by value in Python and built in one
#: np.array call; above, numpy's own passes are quicker.
_LOOP_MAX_VALUES = 512
_EXACT = 2**53  # integers a float64 holds exactly


def fast_spec(contract: Contract) -> FastSpec | None:
    """The input ``read_fast`` can serve: the only one, floats, every axis but the batch known."""
    if len(contract.inputs) != 1 or contract.tabular:
        return None
    spec = contract.inputs[0]
    dtype = spec.np_dtype
    if spec.any_shape or dtype.kind != "f" or len(spec.shape) < 2:
        return None
    width = spec.shape[1] if len(spec.shape) == 2 else 0
    return FastSpec(spec.name, spec.shape, dtype, width, float(np.finfo(dtype).max))


def read_fast(body: Any, spec: FastSpec, limits: Limits) -> Request | None:
    """The common request, ``{"data": rows}`` of plain numbers for a single float input, read
    with as few steps as possible; ``None`` for anything else, which ``read`` then takes (and
    raises the errors for). Accepts only what ``read`` accepts, giving the same arrays.

    The general path's dispatch and per-step checks cost more than a small model's prediction;
    this is what keeps ServeML near a bare handler on one row.
    """
    rows = body.get("data") if type(body) is dict and len(body) == 1 else None
    if type(rows) is not list or not rows:
        return None
    if limits.max_batch_rows is not None and len(rows) > limits.max_batch_rows:
        return None
    if spec.width and not limits.allow_nan and len(rows) * abs(spec.width) <= _LOOP_MAX_VALUES:
        array = _small(rows, spec)
    else:
        array = _large(rows, spec, limits.allow_nan)
    return None if array is None else Request("data", {spec.name: array}, len(rows))


def _small(rows: list[Any], spec: FastSpec) -> Array | None:
    """Rows of plain, finite, in-range numbers, checked value by value, then one np.array call."""
    width = spec.width if spec.width > 0 else (len(rows[0]) if type(rows[0]) is list else -1)
    bound = spec.bound
    for row in rows:
        if type(row) is not list or len(row) != width or not width:
            return None
        for value in row:
            # bool is neither; a NaN, an infinity or an overflow fails the range check, and an
            # integer beyond 2**53 goes to read, whose int64 or object route rounds it once
            kind = type(value)
            if not (-bound <= value <= bound if kind is float else kind is int and -_EXACT <= value <= _EXACT):
                return None
    return np.array(rows, dtype=spec.dtype)


def _large(rows: list[Any], spec: FastSpec, allow_nan: bool) -> Array | None:
    try:
        array = np.array(rows)
    except (ValueError, TypeError):
        return None  # ragged: read names the row
    if array.dtype.kind not in "fi" or not _fits(array.shape, spec.shape):
        return None
    if array.dtype != spec.dtype:
        with np.errstate(over="ignore", invalid="ignore"):
            array = array.astype(spec.dtype)
    if not allow_nan and not np.isfinite(array).all():
        return None  # read says which value, and whether it was NaN or an overflow
    return array


def _fits(got: tuple[int, ...], expected: tuple[int, ...]) -> bool:
    return len(got) == len(expected) and all(e in (-1, g) for e, g in zip(expected[1:], got[1:], strict=True))


def _probabilities(body: dict[str, Any]) -> bool:
    flag = body.get("probabilities", False)
    parameters = body.get("parameters")
    if parameters is not None:
        if not isinstance(parameters, dict):
            raise InvalidInput("'parameters' must be an object", got=validation.json_type(parameters))
        flag = parameters.get("probabilities", flag)
    if not isinstance(flag, bool):
        raise InvalidInput("'probabilities' must be true or false", got=validation.json_type(flag))
    return flag


def _read_rows(value: Any, contract: Contract, limits: Limits, *, single_row: bool, field: str) -> dict[str, Array]:
    specs = contract.inputs
    if isinstance(value, dict):
        return _read_named(value, specs, limits, single_row=single_row)
    if not isinstance(value, list):
        raise InvalidInput(f"'{field}' must be an array of rows, got {validation.json_type(value)}", field=field)
    if value and all(isinstance(item, dict) for item in value):
        return _read_objects(value, specs, limits)
    if contract.tabular and len(specs) > 1:
        return validation.split_columns(value, specs, allow_nan=limits.allow_nan)
    if len(specs) > 1:
        raise InvalidInput(
            f"this model takes {len(specs)} named inputs {list(contract.names)}: send '{field}' as an object "
            "keyed by input name, or rows as objects",
            inputs=list(contract.names),
        )
    return {specs[0].name: validation.to_input(value, specs[0], allow_nan=limits.allow_nan, single_row=single_row)}


def _read_named(
    value: dict[str, Any], specs: tuple[TensorSpec, ...], limits: Limits, *, single_row: bool
) -> dict[str, Array]:
    _check_names(value.keys(), specs)
    if all(len(s.shape) == 1 for s in specs) and all(not isinstance(v, list) for v in value.values()):
        value = {k: [v] for k, v in value.items()}  # one row as {"feature": value, ...}
    return {
        s.name: validation.to_input(value[s.name], s, allow_nan=limits.allow_nan, single_row=single_row) for s in specs
    }


def _read_objects(items: list[dict[str, Any]], specs: tuple[TensorSpec, ...], limits: Limits) -> dict[str, Array]:
    """Rows as objects keyed by feature (or input) name: gather one column per input."""
    names = [s.name for s in specs]
    for index, item in enumerate(items):
        if item.keys() != set(names):
            _check_names(item.keys(), specs, where=f"instance {index}")
    return {
        s.name: validation.to_input([item[s.name] for item in items], s, allow_nan=limits.allow_nan, single_row=False)
        for s in specs
    }


def _check_names(keys: Any, specs: tuple[TensorSpec, ...], where: str = "the request") -> None:
    expected = [s.name for s in specs]
    missing = [n for n in expected if n not in keys]
    unknown = sorted(str(k) for k in keys if k not in expected)
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"missing feature(s) {', '.join(map(repr, missing))}")
        if unknown:
            parts.append(f"unknown feature(s) {', '.join(map(repr, unknown))}")
        raise FeatureMismatch(
            f"{where}: {'; '.join(parts)}; expected: {', '.join(expected)}",
            missing=missing,
            unknown=unknown,
            expected=expected,
        )


def _read_v2(items: Any, contract: Contract, limits: Limits) -> dict[str, Array]:
    if not isinstance(items, list) or not items:
        raise InvalidInput("'inputs' must be a non-empty array of {name, shape, datatype, data}")
    by_name: dict[str, dict[str, Any]] = {}
    for index, item in enumerate(items):
        if not isinstance(item, dict) or not {"name", "shape", "datatype", "data"} <= item.keys():
            raise InvalidInput(
                f"inputs[{index}] must be an object with name, shape, datatype and data",
                index=index,
            )
        by_name[str(item["name"])] = item
    specs = contract.inputs
    _check_names(by_name.keys(), specs)
    return {s.name: _v2_tensor(by_name[s.name], s, limits) for s in specs}


def _v2_tensor(item: dict[str, Any], spec: TensorSpec, limits: Limits) -> Array:
    datatype = item["datatype"]
    declared = V2_DATATYPES.get(datatype) if isinstance(datatype, str) else None
    if declared is None:
        raise InvalidInput(
            f"input {spec.name!r}: unknown datatype {datatype!r}; known: {', '.join(V2_DATATYPES)}",
            input=spec.name,
        )
    shape = item["shape"]
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise InvalidInput(f"input {spec.name!r}: shape must be a list of sizes, got {shape!r}", input=spec.name)
    as_declared = TensorSpec(spec.name, declared, tuple([-1] * max(len(shape), 1)))
    flat = validation.cast(validation.as_array(item["data"], as_declared).reshape(-1), as_declared)
    if flat.size != math.prod(shape):
        raise ShapeMismatch(
            f"input {spec.name!r}: shape {shape} needs {math.prod(shape)} values, got {flat.size}",
            input=spec.name,
            shape=shape,
            got=int(flat.size),
        )
    try:
        shaped = flat.reshape(shape)
    except ValueError as exc:  # more axes than numpy holds (64)
        raise ShapeMismatch(f"input {spec.name!r}: shape {shape} is not possible: {exc}", input=spec.name) from None
    return validation.to_input(shaped, spec, allow_nan=limits.allow_nan, single_row=False)


@dataclass(frozen=True)  # no slots: cached_property needs the instance __dict__
class ModelInfo:
    """What a response says about the model."""

    name: str
    version: str
    framework: str
    training_date: str | None = None
    metrics: dict[str, Any] | None = None
    labels: dict[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        info: dict[str, Any] = {"name": self.name, "version": self.version, "framework": self.framework}
        if self.training_date:
            info["training_date"] = self.training_date
        if self.metrics:
            info["metrics"] = self.metrics
        return info

    @functools.cached_property
    def encoded(self) -> orjson.Fragment:
        """``to_json`` encoded once: every response carries it."""
        return orjson.Fragment(orjson.dumps(self.to_json()))


def render(request: Request, prediction: Prediction, model: ModelInfo) -> dict[str, Any]:
    """The response body for a prediction, in the protocol the request used."""
    if request.protocol == "v2":
        return _render_v2(request, prediction, model)
    names = list(prediction.outputs)
    body: dict[str, Any] = {"predictions": _labelled(prediction.outputs[names[0]], model.labels)}
    if prediction.probabilities is not None:
        body["probabilities"] = prediction.probabilities
        if prediction.classes is not None:
            body["classes"] = _labelled(np.asarray(prediction.classes), model.labels)
    if len(names) > 1:
        body["outputs"] = {name: prediction.outputs[name] for name in names[1:]}
    body["model"] = model.encoded
    return body


def _render_v2(request: Request, prediction: Prediction, model: ModelInfo) -> dict[str, Any]:
    tensors = dict(prediction.outputs)
    if prediction.probabilities is not None:
        tensors["probabilities"] = prediction.probabilities
    outputs = [
        {
            "name": name,
            "shape": list(array.shape),
            "datatype": _V2_NAMES.get(dtype_name(array.dtype), "BYTES"),
            "data": _plain(array.reshape(-1)),
        }
        for name, array in tensors.items()
    ]
    body: dict[str, Any] = {"model_name": model.name, "model_version": model.version, "outputs": outputs}
    if request.request_id is not None:
        body["id"] = request.request_id
    if prediction.classes is not None:
        body["parameters"] = {"classes": _labelled(np.asarray(prediction.classes), model.labels)}
    return body


def _labelled(values: Array, labels: dict[str, str] | None) -> Any:
    """Integer class indices -> label names, where the manifest names them."""
    if not labels or values.dtype.kind not in "iu":
        return _plain(values)
    return [labels.get(str(v), v) for v in values.tolist()]


def _plain(values: Array) -> Any:
    # orjson serializes numeric numpy arrays natively (fast); strings and objects need lists
    if values.dtype.kind in "biuf" and values.dtype != np.float16:
        return np.ascontiguousarray(values)
    return values.tolist()
