"""The handler serving every model format of every framework, built by tests/modelzoo.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from runtime.context import LocalContext
from runtime.service import load_service
from tests.functional.conftest import answer
from tests.modelzoo import KINDS, build

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", params=KINDS)
def served(request, tmp_path_factory):
    zoo = build(request.param, tmp_path_factory.mktemp(request.param))
    return zoo, load_service(zoo.path)


def ask(service, sent):
    return answer(service.handle(sent, LocalContext()))


def rows_as_request(zoo, service):
    """The zoo's flat rows in the request form the model's contract takes."""
    contract = service.contract
    if contract.tabular or len(contract.inputs) == 1:
        return {"data": zoo.rows}
    # several named inputs: split each flat row by the inputs' widths
    data, start = {}, 0
    for spec in contract.inputs:
        width = int(np.prod(spec.row_shape))
        data[spec.name] = [row[start : start + width] for row in zoo.rows]
        start += width
    return {"data": data}


def assert_same(got, expected):
    if expected and isinstance(np.asarray(expected).flat[0], str):
        assert got == expected
    else:
        np.testing.assert_allclose(np.asarray(got, dtype=float), np.asarray(expected, dtype=float), rtol=1e-5)


def test_each_format_predicts_what_the_framework_itself_predicts(served):
    zoo, service = served
    status, body = ask(service, rows_as_request(zoo, service))
    assert status == 200, body
    assert body["model"]["framework"] == zoo.framework
    assert_same(body["predictions"], zoo.expected)


def test_each_format_answers_health_with_its_framework_and_contract(served):
    zoo, service = served
    status, body = ask(service, {"health": True})
    assert status == 200
    assert body["framework"]["name"] == zoo.framework
    assert body["framework"]["versions"]
    assert body["contract"]["inputs"]
    assert body["warmup_error"] is None


def test_each_format_refuses_a_row_with_a_missing_value_and_keeps_serving(served):
    zoo, service = served
    request = rows_as_request(zoo, service)
    broken = json.loads(json.dumps(request))
    first = broken["data"] if isinstance(broken["data"], list) else next(iter(broken["data"].values()))
    first[0][0] = "not a number" if not isinstance(first[0][0], str) else 7
    _, body = ask(service, broken)
    assert body["error"]["code"] == "DTYPE_MISMATCH"
    status, body = ask(service, request)
    assert status == 200
    assert_same(body["predictions"], zoo.expected)


@pytest.fixture(scope="module")
def frame_model(tmp_path_factory):
    zoo = build("sklearn-dataframe", tmp_path_factory.mktemp("frame"))
    return zoo, load_service(zoo.path)


def test_a_dataframe_pipeline_takes_rows_keyed_by_feature_name(frame_model):
    zoo, service = frame_model
    names = ["sepal_length", "petal_length", "colour"]
    instances = [dict(zip(names, row, strict=True)) for row in zoo.rows]
    status, body = ask(service, {"instances": instances})
    assert status == 200, body
    assert body["predictions"] == zoo.expected
    assert ask(service, {"data": zoo.rows})[1]["predictions"] == zoo.expected


def test_a_dataframe_pipeline_reads_its_string_columns_off_the_model(frame_model):
    _, service = frame_model
    specs = {s.name: s.dtype for s in service.contract.inputs}
    assert specs == {"sepal_length": "float64", "petal_length": "float64", "colour": "string"}


@pytest.mark.parametrize(
    ("instance", "code", "words"),
    [
        ({"sepal_length": 5.1, "colour": "red"}, "FEATURE_MISMATCH", "missing feature(s) 'petal_length'"),
        (
            {"sepal_length": 5.1, "petal_length": 1.4, "colour": "red", "height": 2},
            "FEATURE_MISMATCH",
            "unknown feature(s) 'height'",
        ),
        ({"sepal_length": "5.1", "petal_length": 1.4, "colour": "red"}, "DTYPE_MISMATCH", "sepal_length"),
        ({"sepal_length": 5.1, "petal_length": 1.4, "colour": 3}, "DTYPE_MISMATCH", "colour"),
        ({"sepal_length": None, "petal_length": 1.4, "colour": "red"}, "NAN_INPUT", "sepal_length"),
    ],
)
def test_named_features_are_checked_by_name_and_type(frame_model, instance, code, words):
    _, service = frame_model
    _, body = ask(service, {"instances": [instance]})
    assert body["error"]["code"] == code
    assert words in body["error"]["message"]


def test_v2_takes_one_named_tensor_per_feature(frame_model):
    zoo, service = frame_model
    columns = list(zip(*zoo.rows, strict=True))
    inputs = [
        {"name": "sepal_length", "shape": [len(zoo.rows)], "datatype": "FP64", "data": list(columns[0])},
        {"name": "petal_length", "shape": [len(zoo.rows)], "datatype": "FP64", "data": list(columns[1])},
        {"name": "colour", "shape": [len(zoo.rows)], "datatype": "BYTES", "data": list(columns[2])},
    ]
    status, body = ask(service, {"inputs": inputs})
    assert status == 200, body
    assert body["outputs"][0]["data"] == zoo.expected
    assert body["outputs"][0]["datatype"] == "BYTES"


def test_v2_refuses_a_shape_that_does_not_hold_its_data(frame_model):
    _, service = frame_model
    inputs = [{"name": "sepal_length", "shape": [2], "datatype": "FP64", "data": [1.0]}]
    _, body = ask(service, {"inputs": inputs})
    assert body["error"]["code"] in {"SHAPE_MISMATCH", "FEATURE_MISMATCH"}


@pytest.mark.parametrize("kind", ["onnx", "sklearn-joblib", "torchscript", "keras"])
def test_only_the_framework_in_use_is_imported(tmp_path, kind):
    # GIVEN a model of one framework, served in a fresh interpreter
    zoo = build(kind, tmp_path / kind)
    others = {"sklearn", "torch", "tensorflow", "onnxruntime"} - {
        {"sklearn": "sklearn", "pytorch": "torch", "tensorflow": "tensorflow", "onnx": "onnxruntime"}[zoo.framework]
    }
    if zoo.framework == "tensorflow":
        # Keras 3 itself imports its scikit-learn wrappers when scikit-learn is installed (here it
        # is; a TensorFlow model image holds no scikit-learn)
        others.discard("sklearn")
    script = (
        "import json, sys\n"
        "from runtime.service import load_service\n"
        "from runtime.context import LocalContext\n"
        f"s = load_service({str(zoo.path)!r})\n"
        "s.handle({'health': True}, LocalContext())\n"
        f"print(json.dumps(sorted(m for m in {sorted(others)!r} if m in sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    # THEN no other framework was imported
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
