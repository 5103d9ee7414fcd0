"""protocol.read_fast takes only what protocol.read accepts and gives the same arrays; anything
else (including every error) it leaves to read. Checked on generated bodies with hypothesis."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime import protocol
from runtime.contract import Contract, TensorSpec
from runtime.errors import ServeMLError

CONTRACTS = {
    "float64[-1,4]": Contract.of([TensorSpec("x", "float64", (-1, 4))]),
    "float32[-1,3]": Contract.of([TensorSpec("x", "float32", (-1, 3))]),
    "float32[-1,2,2]": Contract.of([TensorSpec("x", "float32", (-1, 2, 2))]),
    "float32[-1,-1]": Contract.of([TensorSpec("x", "float32", (-1, -1))]),
}
LIMITS = [protocol.Limits(), protocol.Limits(allow_nan=True), protocol.Limits(max_batch_rows=3)]

scalars = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-1e6, max_value=1e6),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.booleans(),
    st.none(),
    st.text(max_size=3),
)
rows = st.lists(st.lists(scalars, min_size=0, max_size=5), min_size=0, max_size=5)
nested = st.lists(st.lists(st.lists(st.floats(-10, 10), min_size=2, max_size=2), min_size=1, max_size=3), max_size=3)
bodies = st.one_of(
    st.fixed_dictionaries({"data": st.one_of(rows, nested, scalars, st.lists(scalars, max_size=4))}),
    st.fixed_dictionaries({"data": rows, "probabilities": st.booleans()}),
    st.fixed_dictionaries({"instances": rows}),
    st.dictionaries(st.text(max_size=4), scalars, max_size=3),
    scalars,
)


def general(body, contract, limits):
    try:
        return protocol.read(body, contract, limits)
    except ServeMLError:
        return None


@pytest.mark.parametrize("contract_name", sorted(CONTRACTS))
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=bodies, limits_index=st.integers(0, len(LIMITS) - 1))
def test_the_fast_path_agrees_with_the_general_one(contract_name, body, limits_index):
    contract, limits = CONTRACTS[contract_name], LIMITS[limits_index]
    spec = protocol.fast_spec(contract)
    assert spec is not None
    fast = protocol.read_fast(body, spec, limits)
    if fast is None:
        return  # read answers it (or refuses it); nothing to compare
    slow = general(body, contract, limits)
    assert slow is not None, f"fast path accepted what read refuses: {body!r}"
    assert (fast.protocol, fast.rows, fast.probabilities) == (slow.protocol, slow.rows, slow.probabilities)
    [(name, array)] = fast.inputs.items()
    expected = slow.inputs[name]
    assert array.dtype == expected.dtype
    assert array.shape == expected.shape
    np.testing.assert_array_equal(array, expected)


def test_the_fast_path_takes_the_plain_request():
    spec = protocol.fast_spec(CONTRACTS["float64[-1,4]"])
    request = protocol.read_fast({"data": [[5.1, 3.5, 1.4, 0.2], [1, 2, 3, 4]]}, spec, protocol.Limits())
    assert request is not None
    assert request.rows == 2
    assert request.inputs["x"].dtype == np.float64


@pytest.mark.parametrize(
    "body",
    [
        {"data": [[1.0, 2.0, 3.0, math.nan]]},  # NaN: read names it
        {"data": [[1.0, 2.0, 3.0]]},  # wrong width: read says so
        {"data": [[1.0, 2.0, 3.0, 4.0], [1.0]]},  # ragged
        {"data": [[1.0, 2.0, 3.0, "4"]]},  # a string
        {"data": [1.0, 2.0, 3.0, 4.0]},  # one row without its batch axis: read adds it
        {"data": [[True, False, True, False]]},  # booleans: read casts them
        {"data": [[1.0, 2.0, 3.0, 4.0]], "probabilities": True},
        {"data": []},
    ],
)
def test_the_fast_path_leaves_anything_unusual_to_read(body):
    spec = protocol.fast_spec(CONTRACTS["float64[-1,4]"])
    assert protocol.read_fast(body, spec, protocol.Limits()) is None


@pytest.mark.parametrize(
    "contract",
    [
        Contract.of([TensorSpec("a", "float32", (-1,)), TensorSpec("b", "float32", (-1,))]),  # tabular
        Contract.of([TensorSpec("x", "int64", (-1, 4))]),
        Contract.of([TensorSpec("x", "float32", (-1, 4)), TensorSpec("y", "float32", (-1, 4))]),
        Contract.unknown(),
    ],
)
def test_only_a_single_float_tensor_has_a_fast_path(contract):
    assert protocol.fast_spec(contract) is None


@pytest.mark.parametrize("value", [2**53, 2**53 + 1, 2**60 + 1, 2**64 + 5, -(2**63) - 1, 3.5e38, -1e308, 1e-45])
@pytest.mark.parametrize("contract_name", ["float64[-1,4]", "float32[-1,3]"])
def test_large_and_tiny_numbers_read_alike(contract_name, value):
    contract = CONTRACTS[contract_name]
    width = contract.inputs[0].shape[1]
    body = {"data": [[value] + [1.0] * (width - 1)]}
    fast = protocol.read_fast(body, protocol.fast_spec(contract), protocol.Limits())
    slow = general(body, contract, protocol.Limits())
    if fast is not None:
        assert slow is not None
        np.testing.assert_array_equal(fast.inputs["x"], slow.inputs["x"])
        assert fast.inputs["x"].dtype == slow.inputs["x"].dtype
