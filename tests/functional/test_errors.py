"""Every documented error code, reached through the handler with real models, and the process
still serving afterwards."""

from __future__ import annotations

import json
import time
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_iris
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from runtime.context import LocalContext
from runtime.errors import ERROR_CODES, InvalidManifest, ModelLoadFailed, UnsupportedFramework
from runtime.service import load_service
from runtime.transport import MAX_PAYLOAD_BYTES
from tests.functional.conftest import answer, event, write_iris
from tests.functional.slow_model import SlowClassifier

GOOD = {"data": [[5.1, 3.5, 1.4, 0.2]]}


def serve(directory: Path, model: object, manifest: dict | None = None, name: str = "model.joblib"):
    directory.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, directory / name)
    if manifest is not None:
        (directory / "serveml.json").write_text(json.dumps(manifest))
    return load_service(directory)


def ask(service, sent, context=None):
    return answer(service.handle(sent, context or LocalContext()))


def test_payload_over_6_mb_is_refused_before_parsing(call):
    big = json.dumps({"data": [[5.1, 3.5, 1.4, 0.2]] * 300_000})
    assert len(big) > MAX_PAYLOAD_BYTES
    sent = {**event("http_api_v2"), "body": big}
    status, body = call(sent)
    assert (status, body["error"]["code"]) == (413, "PAYLOAD_TOO_LARGE")
    assert body["error"]["details"]["limit"] == MAX_PAYLOAD_BYTES
    assert call(GOOD)[1]["predictions"] == ["setosa"]


def test_batch_over_max_batch_rows_is_refused(call):
    _status, body = call({"data": [[5.1, 3.5, 1.4, 0.2]] * 10_001})
    assert body["error"]["code"] == "BATCH_TOO_LARGE"
    assert body["error"]["details"] == {"rows": 10_001, "max_batch_rows": 10_000}
    assert ERROR_CODES["BATCH_TOO_LARGE"].status == 413


@pytest.mark.parametrize(
    ("rows", "code"),
    [
        ([[5.1, 3.5, 1.4]], "SHAPE_MISMATCH"),
        ([[5.1, 3.5, 1.4, 0.2, 9.9]], "SHAPE_MISMATCH"),
        ([[5.1, 3.5, 1.4, 0.2], [1.0, 2.0]], "SHAPE_MISMATCH"),
        ([[[5.1, 3.5, 1.4, 0.2]]], "SHAPE_MISMATCH"),
        (5.1, "INVALID_INPUT"),
        ([["5.1", 3.5, 1.4, 0.2]], "DTYPE_MISMATCH"),
        ([[{"a": 1}, 3.5, 1.4, 0.2]], "DTYPE_MISMATCH"),
        ([[None, 3.5, 1.4, 0.2]], "NAN_INPUT"),
        ([], "INVALID_INPUT"),
        ({"input": [[1, 2, 3, 4]], "extra": [1]}, "FEATURE_MISMATCH"),
        ("rows", "INVALID_INPUT"),
    ],
)
def test_bad_data_gets_its_code_and_the_model_never_sees_it(call, rows, code):
    _status, body = call({"data": rows})
    assert body["error"]["code"] == code, body
    assert call(GOOD)[1]["predictions"] == ["setosa"]


def test_bare_nan_and_infinity_in_an_http_body_are_named_not_called_invalid_json(call):
    status, body = call("errors/nan_input_http")
    assert (status, body["error"]["code"]) == (400, "NAN_INPUT")
    assert body["error"]["details"]["count"] == 2


def test_contract_dtypes_take_only_safe_casts(tmp_path):
    x, y = load_iris(return_X_y=True)
    manifest = {"inputs": [{"name": "input", "dtype": "int32", "shape": [-1, 4]}]}
    service = serve(tmp_path, LogisticRegression(max_iter=500).fit(x.round(), y), manifest)
    assert ask(service, {"data": [[5, 3, 1, 0]]})[0] == 200
    assert ask(service, {"data": [[True, 3, 1, 0]]})[0] == 200
    _, body = ask(service, {"data": [[5.5, 3, 1, 0]]})
    assert body["error"]["code"] == "DTYPE_MISMATCH"
    assert "int32" in body["error"]["message"]
    _, body = ask(service, {"data": [[2**40, 3, 1, 0]]})
    assert body["error"]["code"] == "DTYPE_MISMATCH"
    assert "does not fit in int32" in body["error"]["message"]
    _, body = ask(service, {"data": [[2**70, 3, 1, 0]]})
    assert body["error"]["code"] == "DTYPE_MISMATCH"


def test_a_finite_number_too_big_for_float32_is_a_dtype_error_not_nan(tmp_path):
    x, y = load_iris(return_X_y=True)
    manifest = {"inputs": [{"name": "input", "dtype": "float32", "shape": [-1, 4]}]}
    service = serve(tmp_path, LogisticRegression(max_iter=500).fit(x, y), manifest)
    _, body = ask(service, {"data": [[1e300, 3.5, 1.4, 0.2]]})
    assert body["error"]["code"] == "DTYPE_MISMATCH"
    assert "out of range for float32" in body["error"]["message"]


def test_allow_nan_lets_missing_values_through_to_a_model_that_handles_them(tmp_path):
    x, y = load_iris(return_X_y=True)
    x[::7, 0] = np.nan
    model = HistGradientBoostingClassifier(max_iter=20).fit(x, y)
    service = serve(tmp_path, model, {"allow_nan": True})
    status, body = ask(service, {"data": [[None, 3.5, 1.4, 0.2]]})
    assert status == 200
    assert body["predictions"] == model.predict(np.array([[np.nan, 3.5, 1.4, 0.2]])).tolist()


def test_non_finite_predictions_are_written_as_null_so_the_response_stays_valid_json(tmp_path):
    x, _ = load_iris(return_X_y=True)
    service = serve(tmp_path, LinearRegression().fit(x, x[:, 0]), {"allow_nan": True})
    result = service.handle({"data": [[None, 3.5, 1.4, 0.2], [5.1, 3.5, 1.4, 0.2]]}, LocalContext())
    body = json.loads(result)  # json.loads would accept NaN; check the text itself too
    assert b"NaN" not in result
    assert body["predictions"][0] is None
    assert isinstance(body["predictions"][1], float)


def test_an_error_the_framework_raises_is_prediction_failed_never_a_200(tmp_path):
    frame = pd.DataFrame({"size": [1.0, 2.0, 3.0, 4.0], "colour": ["red", "blue", "red", "blue"]})
    pipeline = make_pipeline(
        ColumnTransformer([("cat", OneHotEncoder(handle_unknown="error"), ["colour"])], remainder="passthrough"),
        LogisticRegression(),
    ).fit(frame, [0, 1, 0, 1])
    service = serve(tmp_path, pipeline)
    status, body = ask(service, {"instances": [{"size": 1.0, "colour": "green"}]})
    assert (status, body["error"]["code"]) == (500, "PREDICTION_FAILED")
    assert "green" in body["error"]["message"]
    assert ask(service, {"instances": [{"size": 1.0, "colour": "red"}]})[1]["predictions"] == [0]


@pytest.fixture
def slow(tmp_path):
    return serve(tmp_path, SlowClassifier(seconds=1.0).fit(np.zeros((2, 4)), [0, 1]), {"trusted": True})


def test_a_prediction_that_would_pass_the_deadline_answers_timeout_before_it(slow):
    # GIVEN a model that takes 1 s, and an invocation with 0.9 s left
    started = time.monotonic()
    status, body = ask(slow, GOOD, LocalContext(timeout_s=0.9))
    # THEN the handler answers TIMEOUT before the deadline instead of being killed mid-way
    assert time.monotonic() - started < 0.9
    assert (status, body["error"]["code"]) == (504, "TIMEOUT")
    assert ERROR_CODES["TIMEOUT"].status == 504
    # AND the next invocation with enough time is served
    status, body = ask(slow, GOOD, LocalContext(timeout_s=30))
    assert (status, body["predictions"]) == (200, [0])


def test_serveml_timeout_caps_a_prediction(tmp_path, monkeypatch):
    monkeypatch.setenv("SERVEML_TIMEOUT", "0.2")
    service = serve(tmp_path, SlowClassifier(seconds=0.5).fit(np.zeros((2, 4)), [0, 1]), {"trusted": True})
    started = time.monotonic()
    _, body = ask(service, GOOD, LocalContext(timeout_s=300))
    assert body["error"]["code"] == "TIMEOUT"
    assert time.monotonic() - started < 0.45


def test_a_model_that_fails_to_load_is_one_init_error_with_code_path_and_cause(tmp_path):
    model = tmp_path / "model.joblib"
    model.write_bytes(b"\x80\x04this is not a pickle")
    with pytest.raises(ModelLoadFailed) as raised:
        load_service(model)
    assert str(raised.value).startswith("MODEL_LOAD_FAILED: ")
    assert str(model) in str(raised.value)
    assert raised.value.details["path"] == str(model)


def test_a_missing_model_path_is_model_load_failed(tmp_path):
    with pytest.raises(ModelLoadFailed, match="does not exist"):
        load_service(tmp_path / "nowhere")


def test_a_directory_with_two_models_asks_for_model_file(tmp_path):
    for name in ("a.joblib", "b.onnx"):
        (tmp_path / name).write_bytes(b"x")
    with pytest.raises(ModelLoadFailed, match="several model files"):
        load_service(tmp_path)


def test_an_unknown_file_is_unsupported_framework_naming_what_was_found(tmp_path):
    model = tmp_path / "model.bin"
    model.write_bytes(b"GGUF\x00\x01binary weights")
    with pytest.raises(UnsupportedFramework) as raised:
        load_service(model)
    assert "model.bin" in raised.value.message
    assert ".onnx" in raised.value.message
    assert raised.value.details["found"] == "unknown file type"


def test_a_manifest_naming_an_unknown_framework_is_unsupported(tmp_path):
    write_iris(tmp_path, framework="xgboost")
    with pytest.raises(UnsupportedFramework, match="'xgboost' is not supported; supported: sklearn, pytorch"):
        load_service(tmp_path)


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        ({"alow_nan": True}, "unknown field(s) alow_nan"),
        ({"max_batch_rows": "100"}, "'max_batch_rows' must be int, got str"),
        ({"max_batch_rows": True}, "'max_batch_rows' must be int, got bool"),
        ({"inputs": [{"name": "x", "dtype": "float32"}]}, "inputs[0] is missing shape"),
        ({"inputs": [{"name": "x", "dtype": "complex", "shape": [-1, 4]}]}, "unknown dtype 'complex'"),
    ],
)
def test_a_wrong_manifest_is_invalid_manifest_naming_the_field(tmp_path, manifest, message):
    write_iris(tmp_path, **manifest)
    with pytest.raises(InvalidManifest) as raised:
        load_service(tmp_path)
    assert message in raised.value.message


def test_a_model_changed_after_build_fails_the_sha256_check(tmp_path):
    write_iris(tmp_path, sha256="0" * 64)
    with pytest.raises(ModelLoadFailed, match="does not match the sha256"):
        load_service(tmp_path)
