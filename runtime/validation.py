"""Checks that turn request values into arrays the model's contract accepts, before any
framework sees them. Pure functions; each raises with the input's name, what was expected and
what was sent.

Casting is table-driven: ``ACCEPTS`` says which kinds of JSON-born values a contract dtype takes.
Numbers go into floats (JSON has no float32), integers into integers when they fit, booleans into
numbers (numpy's safe cast), strings only into strings. Anything else is ``DTYPE_MISMATCH``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from runtime.contract import TensorSpec
from runtime.errors import (
    BatchTooLarge,
    DtypeMismatch,
    InvalidInput,
    NanInput,
    ShapeMismatch,
)

Array = np.ndarray[Any, Any]

#: Contract dtype kind -> numpy kinds of parsed values it accepts.
ACCEPTS: dict[str, str] = {
    "f": "biuf",
    "i": "biu",
    "u": "biu",
    "b": "b",
    "O": "U",
}

_FLOAT64_MAX = float(np.finfo(np.float64).max)

_KIND_NAMES = {"b": "boolean", "i": "integer", "u": "integer", "f": "number", "U": "string", "S": "string"}


_JSON_TYPES: tuple[tuple[type | tuple[type, ...], str], ...] = (
    (bool, "boolean"),  # before int: bool is an int subclass
    ((int, float), "number"),
    (str, "string"),
    (dict, "object"),
    ((list, tuple), "array"),
)


def json_type(value: Any) -> str:
    """The JSON name of a decoded value's type, for messages."""
    if value is None:
        return "null"
    for types, name in _JSON_TYPES:
        if isinstance(value, types):
            return name
    return type(value).__name__


def as_array(value: Any, spec: TensorSpec) -> Array:
    """Build an array from decoded JSON, letting numpy infer the kind; ragged rows are SHAPE_MISMATCH."""
    if isinstance(value, dict):
        raise InvalidInput(
            f"input {spec.name!r} must be an array, got an object",
            input=spec.name,
            got="object",
        )
    try:
        return np.array(value)
    except (ValueError, TypeError) as exc:
        raise ShapeMismatch(_ragged_message(value, spec, exc), input=spec.name, expected=list(spec.shape)) from exc


def _ragged_message(value: Any, spec: TensorSpec, exc: Exception) -> str:
    if isinstance(value, list) and value and all(isinstance(row, list) for row in value):
        width = len(value[0])
        for index, row in enumerate(value):
            if len(row) != width:
                return (
                    f"input {spec.name!r}: rows must all have the same length; "
                    f"row 0 has {width} values, row {index} has {len(row)}"
                )
    return f"input {spec.name!r}: values do not form a rectangular array ({exc})"


def cast(array: Array, spec: TensorSpec) -> Array:
    """Cast parsed values to the contract dtype when that is safe, else DTYPE_MISMATCH."""
    target = spec.np_dtype
    if array.dtype.kind == "O":
        return _cast_objects(array, spec)
    if array.dtype.kind not in ACCEPTS[target.kind]:
        got = _KIND_NAMES.get(array.dtype.kind, array.dtype.name)
        raise DtypeMismatch(
            f"input {spec.name!r} expects {spec.dtype} values, got {got}",
            input=spec.name,
            expected=spec.dtype,
            got=got,
        )
    if target.kind == "O":
        return array.astype(object)
    if target.kind in "iu" and array.dtype.kind in "iu" and array.size:
        _check_int_range(array, spec)
    if array.dtype == target:
        return array
    # overflow to inf is caught by check_finite, which can then name the value
    with np.errstate(over="ignore", invalid="ignore"):
        return array.astype(target)


def _check_int_range(array: Array, spec: TensorSpec) -> None:
    info = np.iinfo(spec.np_dtype)
    low, high = array.min(), array.max()
    if low < info.min or high > info.max:
        bad = low if low < info.min else high
        raise DtypeMismatch(
            f"input {spec.name!r}: value {int(bad)} does not fit in {spec.dtype} [{info.min}, {info.max}]",
            input=spec.name,
            expected=spec.dtype,
            got=int(bad),
        )


def _cast_objects(array: Array, spec: TensorSpec) -> Array:
    """Values numpy could not type on its own: nulls, mixed kinds, integers too big for int64."""
    flat = array.ravel()
    target = spec.np_dtype
    if target.kind == "O":
        for value in flat:
            if not isinstance(value, str):
                raise _mismatch(spec, value)
        return array
    if target.kind == "f":
        for value in flat:
            # null is a missing value: it becomes NaN and meets the NaN check next
            if value is not None and not isinstance(value, int | float):
                raise _mismatch(spec, value)
        try:
            with np.errstate(over="ignore"):
                return np.array(array.tolist(), dtype=np.float64).astype(target, copy=False)
        except OverflowError:  # an integer beyond float64's range (JSON has no limit on digits)
            bad = next(v for v in flat if isinstance(v, int) and abs(v) > _FLOAT64_MAX)
            raise DtypeMismatch(
                f"input {spec.name!r}: value {_preview(bad)} does not fit in {spec.dtype}",
                input=spec.name,
                expected=spec.dtype,
                got=_preview(bad),  # may exceed 64 bits, which JSON encoders refuse
            ) from None
    for value in flat:
        if not isinstance(value, int) or (target.kind == "b") != isinstance(value, bool):
            raise _mismatch(spec, value)
    info = np.iinfo(target) if target.kind in "iu" else None
    if info is not None:
        for value in flat:
            if not info.min <= value <= info.max:
                raise DtypeMismatch(
                    f"input {spec.name!r}: value {value} does not fit in {spec.dtype} [{info.min}, {info.max}]",
                    input=spec.name,
                    expected=spec.dtype,
                    got=str(value),  # may exceed 64 bits, which JSON encoders refuse
                )
    return array.astype(target)


def _mismatch(spec: TensorSpec, value: Any) -> DtypeMismatch:
    got = json_type(value)
    return DtypeMismatch(
        f"input {spec.name!r} expects {spec.dtype} values, got {got} {_preview(value)}",
        input=spec.name,
        expected=spec.dtype,
        got=got,
    )


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_shape(array: Array, spec: TensorSpec) -> None:
    """The array's shape must match the contract, -1 matching any length."""
    expected = spec.shape
    got = array.shape
    if spec.any_shape:
        return
    if len(got) == len(expected) and all(e in (-1, g) for e, g in zip(expected, got, strict=True)):
        return
    details = {"input": spec.name, "expected": list(expected), "got": list(got)}
    if len(expected) == 2 and len(got) == 2 and expected[1] > 0:
        raise ShapeMismatch(
            f"expected {expected[1]} features, got {got[1]} (input {spec.name!r}: "
            f"expected shape {list(expected)}, got {list(got)})",
            **details,
        )
    raise ShapeMismatch(
        f"unexpected shape for input {spec.name!r}: expected {list(expected)}, got {list(got)}",
        **details,
    )


def check_finite(array: Array, spec: TensorSpec, source: Array | None = None) -> None:
    """Reject NaN and Inf in a float input; a finite value that the cast overflowed is DTYPE_MISMATCH."""
    if array.dtype.kind != "f" or not array.size:
        return
    finite = np.isfinite(array)
    if finite.all():
        return
    first = tuple(int(i) for i in np.argwhere(~finite)[0])
    if source is not None and source.dtype.kind in "iuf" and np.isfinite(source[first]):
        raise DtypeMismatch(
            f"input {spec.name!r}: value {source[first]!r} at {list(first)} is out of range for {spec.dtype}",
            input=spec.name,
            expected=spec.dtype,
            position=list(first),
        )
    count = int(array.size - np.count_nonzero(finite))
    raise NanInput(
        f"input {spec.name!r} holds {count} NaN or infinite value(s), first at {list(first)}; "
        "send finite numbers (or set allow_nan in serveml.json)",
        input=spec.name,
        count=count,
        position=list(first),
    )


def check_batch(arrays: dict[str, Array], max_rows: int | None) -> int:
    """All inputs share one non-empty batch no longer than ``max_rows``; returns its length."""
    sizes = {name: int(a.shape[0]) for name, a in arrays.items()}
    distinct = set(sizes.values())
    if len(distinct) > 1:
        raise ShapeMismatch(
            f"inputs must have the same number of rows, got {sizes}",
            rows=sizes,
        )
    rows = distinct.pop() if distinct else 0
    if rows == 0:
        raise InvalidInput("the batch is empty: send at least one row", rows=0)
    if max_rows is not None and rows > max_rows:
        raise BatchTooLarge(
            f"the batch has {rows} rows, more than this model's limit of {max_rows}; split it",
            rows=rows,
            max_batch_rows=max_rows,
        )
    return rows


def to_input(value: Any, spec: TensorSpec, *, allow_nan: bool, single_row: bool) -> Array:
    """Turn one decoded input into a checked array of the contract's dtype and shape.

    With ``single_row``, a value one dimension short of the contract is one instance, and gets
    the batch axis added (``{"data": [5.1, 3.5, 1.4, 0.2]}``).
    """
    parsed = as_array(value, spec)
    if parsed.ndim >= 1 and parsed.shape[0] == 0:
        raise InvalidInput(f"input {spec.name!r} is an empty batch: send at least one row", input=spec.name, rows=0)
    if single_row and not spec.any_shape and parsed.ndim == len(spec.shape) - 1 and parsed.ndim > 0:
        parsed = parsed[np.newaxis]
    if parsed.ndim == 0:
        raise ShapeMismatch(
            f"input {spec.name!r} must be an array of rows, got a single {json_type(value)}",
            input=spec.name,
            expected=list(spec.shape),
            got=[],
        )
    converted = cast(parsed, spec)
    check_shape(converted, spec)
    if not allow_nan:
        check_finite(converted, spec, parsed if converted is not parsed else None)
    return converted


def split_columns(rows: Any, specs: Sequence[TensorSpec], *, allow_nan: bool) -> dict[str, Array]:
    """Rows of a tabular contract (one value per feature, in contract order) -> one column per feature."""
    table = TensorSpec("rows", "string", (-1, len(specs)))
    parsed = as_array(rows, table)
    if parsed.ndim == 1:
        parsed, rows = parsed[np.newaxis], [rows]
    check_shape(parsed, table)
    if parsed.dtype.kind == "U" and any(s.np_dtype.kind != "O" for s in specs):
        # numpy turns rows mixing strings and numbers into all-strings: keep each value's own type
        parsed = np.array(rows, dtype=object)
    return {s.name: _column(parsed[:, j], s, allow_nan=allow_nan) for j, s in enumerate(specs)}


def _column(column: Array, spec: TensorSpec, *, allow_nan: bool) -> Array:
    converted = cast(column, spec)
    if not allow_nan:
        check_finite(converted, spec)
    return converted
