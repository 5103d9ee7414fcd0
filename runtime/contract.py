"""The input contract of a model: named inputs, each with a dtype and a shape.

A shape uses -1 for an axis of any length; the first axis is the batch. A contract whose inputs
are all one-dimensional is *tabular*: each input is one feature column, and a request row holds
one value per feature, in contract order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Canonical dtype names a contract may use, and the numpy dtype each one means.
DTYPES: dict[str, np.dtype[Any]] = {
    "bool": np.dtype(np.bool_),
    "int8": np.dtype(np.int8),
    "int16": np.dtype(np.int16),
    "int32": np.dtype(np.int32),
    "int64": np.dtype(np.int64),
    "uint8": np.dtype(np.uint8),
    "uint16": np.dtype(np.uint16),
    "uint32": np.dtype(np.uint32),
    "uint64": np.dtype(np.uint64),
    "float16": np.dtype(np.float16),
    "float32": np.dtype(np.float32),
    "float64": np.dtype(np.float64),
    "string": np.dtype(object),
}

_ALIASES = {
    "float": "float64",
    "double": "float64",
    "int": "int64",
    "long": "int64",
    "str": "string",
    "object": "string",
    "bytes": "string",
    "boolean": "bool",
}


_ONNX_ALIASES = {"float": "float32", "double": "float64"}


def canonical_dtype(name: str) -> str:
    """Return the canonical name for a dtype spelling (``"float"`` -> ``"float64"``)."""
    key = str(name).strip().lower()
    if key.startswith("tensor(") and key.endswith(")"):  # ONNX spelling: tensor(float) is 32-bit
        key = key[len("tensor(") : -1]
        key = _ONNX_ALIASES.get(key, key)
    key = _ALIASES.get(key, key)
    if key not in DTYPES:
        raise ValueError(f"unknown dtype {name!r}; known: {', '.join(DTYPES)}")
    return key


def dtype_name(dtype: np.dtype[Any] | type) -> str:
    """Canonical name of a numpy dtype (strings and objects are ``"string"``)."""
    dt = np.dtype(dtype)
    if dt.kind in "OUS":
        return "string"
    return canonical_dtype(dt.name)


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """One named model input."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    #: True when the model did not say its input shape: any shape with a batch axis is taken.
    any_shape: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "dtype", canonical_dtype(self.dtype))
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))
        if not self.shape:
            raise ValueError(f"input {self.name!r}: shape needs at least the batch axis")
        if any(d < -1 or d == 0 for d in self.shape):
            raise ValueError(f"input {self.name!r}: shape {list(self.shape)} may hold only -1 or sizes >= 1")

    @property
    def np_dtype(self) -> np.dtype[Any]:
        return DTYPES[self.dtype]

    @property
    def row_shape(self) -> tuple[int, ...]:
        """The shape of one instance: the contract shape without its batch axis."""
        return self.shape[1:]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": None if self.any_shape else list(self.shape)}


@dataclass(frozen=True, slots=True)
class Contract:
    """The ordered inputs a model takes. ``complete`` is False when the model did not say all of it."""

    inputs: tuple[TensorSpec, ...]
    source: str = "model"

    @classmethod
    def of(cls, specs: Iterable[TensorSpec], source: str = "model") -> Contract:
        return cls(tuple(specs), source)

    @classmethod
    def from_json(cls, items: Sequence[dict[str, Any]], source: str = "manifest") -> Contract:
        return cls.of((TensorSpec(str(i["name"]), str(i["dtype"]), tuple(i["shape"])) for i in items), source)

    @classmethod
    def unknown(cls, dtype: str = "float32") -> Contract:
        """For a model that does not say its inputs: one input of any shape, numbers only."""
        return cls((TensorSpec("input", dtype, (-1,), any_shape=True),), "none")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.inputs)

    @property
    def tabular(self) -> bool:
        """True when every input is one feature column (shape ``[-1]``)."""
        return bool(self.inputs) and all(len(spec.shape) == 1 and not spec.any_shape for spec in self.inputs)

    @property
    def concrete(self) -> bool:
        """True when every axis but the batch axis has a known size."""
        return all(not spec.any_shape and all(d > 0 for d in spec.row_shape) for spec in self.inputs)

    def to_json(self) -> dict[str, Any]:
        return {"inputs": [spec.to_json() for spec in self.inputs], "source": self.source, "tabular": self.tabular}
