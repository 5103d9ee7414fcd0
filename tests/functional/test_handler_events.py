"""The handler driven by the sample events in events/, as Lambda and `sam local invoke` send them."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.datasets import load_iris

from runtime.errors import ERROR_CODES
from tests.functional.conftest import EVENTS, event

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
EXPECTED = ["setosa", "virginica"]

HTTP_EVENTS = ["apigw_v1", "apigw_v1_base64", "http_api_v2", "function_url", "alb"]


@pytest.mark.parametrize("name", ["direct_instances", *HTTP_EVENTS])
def test_prediction_events_answer_with_the_models_own_classes(call, name):
    # GIVEN a sample event of each transport, two iris rows in its body
    # WHEN the handler answers it
    status, body = call(name)
    # THEN the predictions are the model's, named by the manifest's labels, with the model's identity
    assert status == 200
    assert body["predictions"] == EXPECTED
    assert body["model"] == {
        "name": "iris",
        "version": "1.2.3",
        "framework": "sklearn",
        "training_date": "2026-12-01",
        "metrics": {"accuracy": 0.97},
    }


@pytest.mark.parametrize("name", HTTP_EVENTS)
def test_http_events_get_an_http_response_with_a_json_content_type(iris, name):
    result = json.loads(iris.handle(event(name), None))
    assert result["statusCode"] == 200
    assert result["headers"]["Content-Type"] == "application/json"
    assert result["isBase64Encoded"] is False
    if name == "alb":
        assert result["statusDescription"] == "200 OK"


def test_one_row_in_the_guides_form_is_one_prediction(call):
    status, body = call("direct_data_single_row")
    assert (status, body["predictions"]) == (200, ["setosa"])


def test_direct_data_event(call):
    assert call("direct_data")[1]["predictions"] == ["setosa"]


def test_probabilities_on_request_sum_to_one_and_name_their_classes(call, iris):
    status, body = call("direct_probabilities")
    assert status == 200
    assert body["classes"] == ["setosa", "versicolor", "virginica"]
    expected = iris.adapter.model.predict_proba(np.array(ROWS))
    np.testing.assert_allclose(body["probabilities"], expected, rtol=1e-9)


def test_open_inference_protocol_v2_is_answered_in_v2_form(call):
    status, body = call("direct_v2")
    assert status == 200
    assert body["model_name"] == "iris"
    assert body["model_version"] == "1.2.3"
    assert body["id"] == "req-1"
    [output] = body["outputs"]
    assert output == {"name": "predictions", "shape": [2], "datatype": "INT64", "data": [0, 2]}


@pytest.mark.parametrize("name", ["warmup", "scheduled"])
def test_warmup_and_schedule_events_are_answered_without_a_prediction(call, iris, name):
    status, body = call(name)
    assert status == 200
    assert body["warmed"] is True
    assert body["model"]["version"] == "1.2.3"
    assert "predictions" not in body


@pytest.mark.parametrize("name", ["health", "http_health"])
def test_health_reports_the_model_framework_versions_and_contract(call, name):
    status, body = call(name)
    assert status == 200
    assert body["status"] == "ok"
    assert body["loaded"] is True
    assert body["framework"]["name"] == "sklearn"
    assert "scikit-learn" in body["framework"]["versions"]
    assert body["contract"]["inputs"] == [{"name": "input", "dtype": "float64", "shape": [-1, 4]}]
    assert body["model"]["labels"]["0"] == "setosa"


ERROR_EVENTS = {
    "invalid_json": ("INVALID_JSON", 400),
    "invalid_input": ("INVALID_INPUT", None),
    "shape_mismatch": ("SHAPE_MISMATCH", None),
    "dtype_mismatch": ("DTYPE_MISMATCH", None),
    "nan_input": ("NAN_INPUT", None),
    "nan_input_http": ("NAN_INPUT", 400),
    "feature_mismatch": ("FEATURE_MISMATCH", None),
    "empty_batch": ("INVALID_INPUT", None),
    "not_found": ("NOT_FOUND", 404),
    "method_not_allowed": ("METHOD_NOT_ALLOWED", 405),
    "bad_base64": ("INVALID_JSON", 400),
}


@pytest.mark.parametrize("name", sorted(ERROR_EVENTS))
def test_bad_events_get_their_documented_code_and_the_next_request_is_served(call, name):
    code, http_status = ERROR_EVENTS[name]
    # GIVEN a bad request from events/errors
    # WHEN the handler answers it
    status, body = call(f"errors/{name}")
    # THEN the answer is the error envelope with the documented code (and HTTP status)
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert code in ERROR_CODES
    if http_status is not None:
        assert status == http_status == ERROR_CODES[code].status
    # AND the next good request is answered normally
    assert call("direct_data")[1]["predictions"] == ["setosa"]


def test_shape_mismatch_names_expected_and_got(call):
    _, body = call("errors/shape_mismatch")
    assert body["error"]["message"].startswith("expected 4 features, got 3")
    assert body["error"]["details"] == {"input": "input", "expected": [-1, 4], "got": [1, 3]}


def test_every_event_file_is_used_by_a_test():
    used = {*HTTP_EVENTS, "direct_instances", "direct_data", "direct_data_single_row", "direct_probabilities"}
    used |= {"direct_v2", "warmup", "scheduled", "health", "http_health"} | {f"errors/{n}" for n in ERROR_EVENTS}
    on_disk = {str(p.relative_to(EVENTS).with_suffix("")) for p in EVENTS.rglob("*.json")}
    assert on_disk == used


def test_a_full_iris_batch_matches_the_model(call, iris):
    x, _ = load_iris(return_X_y=True)
    status, body = call({"data": x.tolist()})
    assert status == 200
    names = ["setosa", "versicolor", "virginica"]
    assert body["predictions"] == [names[i] for i in iris.adapter.model.predict(x)]
