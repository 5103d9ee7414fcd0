"""The request checks, one table of cases per rule."""

from __future__ import annotations

import numpy as np
import pytest

from runtime.contract import Contract, TensorSpec
from runtime.errors import (
    BatchTooLarge,
    DtypeMismatch,
    InvalidInput,
    NanInput,
    ShapeMismatch,
)
from runtime.validation import check_batch, split_columns, to_input

FLOAT4 = TensorSpec("x", "float32", (-1, 4))


@pytest.mark.parametrize(
    ("dtype", "value", "expected_dtype"),
    [
        ("float32", [[1, 2, 3, 4]], np.float32),
        ("float32", [[1.5, 2, True, 4]], np.float32),
        ("float64", [[1.5, 2, 3, 4]], np.float64),
        ("int64", [[1, 2, 3, 4]], np.int64),
        ("int8", [[1, -2, 3, 127]], np.int8),
        ("uint8", [[0, 2, 3, 255]], np.uint8),
        ("bool", [[True, False, True, False]], np.bool_),
        ("string", [["a", "b", "c", "d"]], object),
    ],
)
def test_safe_casts_are_taken(dtype, value, expected_dtype):
    spec = TensorSpec("x", dtype, (-1, 4))
    out = to_input(value, spec, allow_nan=False, single_row=True)
    assert out.dtype == np.dtype(expected_dtype)
    assert out.shape == (1, 4)


@pytest.mark.parametrize(
    ("dtype", "value", "got"),
    [
        ("float32", [["1", 2, 3, 4]], "string"),
        ("int64", [[1.5, 2, 3, 4]], "number"),
        ("int8", [[1, 2, 3, 128]], 128),
        ("uint8", [[-1, 2, 3, 4]], -1),
        ("bool", [[1, 0, 1, 0]], "integer"),
        ("string", [[1, 2, 3, 4]], "integer"),
        ("string", [["a", None, "c", "d"]], "null"),
        ("float64", [[{}, 2, 3, 4]], "object"),
    ],
)
def test_unsafe_casts_are_dtype_mismatch_naming_what_was_sent(dtype, value, got):
    spec = TensorSpec("x", dtype, (-1, 4))
    with pytest.raises(DtypeMismatch) as raised:
        to_input(value, spec, allow_nan=False, single_row=True)
    assert raised.value.details["expected"] == dtype
    assert raised.value.details["got"] == got


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([[1, 2, 3]], "expected 4 features, got 3"),
        ([[1, 2, 3, 4], [1, 2]], "row 0 has 4 values, row 1 has 2"),
        ([[[1, 2, 3, 4]]], "expected [-1, 4], got [1, 1, 4]"),
        (3.0, "must be an array of rows, got a single number"),
    ],
)
def test_shapes_are_checked_against_the_contract(value, message):
    with pytest.raises(ShapeMismatch, match=message.replace("[", r"\[").replace("]", r"\]")):
        to_input(value, FLOAT4, allow_nan=False, single_row=True)


def test_one_row_gets_a_batch_axis_only_where_single_rows_are_allowed():
    assert to_input([1, 2, 3, 4], FLOAT4, allow_nan=False, single_row=True).shape == (1, 4)
    with pytest.raises(ShapeMismatch):
        to_input([1, 2, 3, 4], FLOAT4, allow_nan=False, single_row=False)


@pytest.mark.parametrize("bad", [None, float("nan"), float("inf"), -float("inf")])
def test_nan_and_inf_are_refused_unless_allowed(bad):
    row = [[1.0, bad, 3.0, 4.0]]
    with pytest.raises(NanInput) as raised:
        to_input(row, FLOAT4, allow_nan=False, single_row=True)
    assert raised.value.details["position"] == [0, 1]
    allowed = to_input(row, FLOAT4, allow_nan=True, single_row=True)
    assert not np.isfinite(allowed[0, 1])


def test_float32_overflow_is_a_dtype_error_that_names_the_value():
    with pytest.raises(DtypeMismatch, match="out of range for float32"):
        to_input([[1e39, 0, 0, 0]], FLOAT4, allow_nan=False, single_row=True)


def test_an_empty_batch_is_invalid_input():
    with pytest.raises(InvalidInput, match="empty batch"):
        to_input([], FLOAT4, allow_nan=False, single_row=True)


def test_batches_must_agree_and_stay_under_the_limit():
    a, b = np.zeros((3, 2)), np.zeros((2, 2))
    with pytest.raises(ShapeMismatch, match="same number of rows"):
        check_batch({"a": a, "b": b}, None)
    with pytest.raises(BatchTooLarge, match="limit of 2"):
        check_batch({"a": a}, 2)
    assert check_batch({"a": a}, 3) == 3


def test_tabular_rows_split_into_typed_columns():
    specs = Contract.of(
        [TensorSpec("size", "float64", (-1,)), TensorSpec("colour", "string", (-1,)), TensorSpec("n", "int64", (-1,))]
    ).inputs
    columns = split_columns([[1.5, "red", 3], [2.5, "blue", 4]], specs, allow_nan=False)
    assert columns["size"].dtype == np.float64
    assert columns["colour"].tolist() == ["red", "blue"]
    assert columns["n"].dtype == np.int64
    with pytest.raises(DtypeMismatch, match="'size'"):
        split_columns([["big", "red", 3]], specs, allow_nan=False)
    with pytest.raises(ShapeMismatch, match="expected 3 features, got 2"):
        split_columns([[1.5, "red"]], specs, allow_nan=False)
