"""Predictions through the API reach a real model runtime (awslambdaric under the Runtime Interface
Emulator, as ``serveml serve`` runs it) and its answers come back unchanged, errors included."""

from __future__ import annotations

import pytest

from controlplane import store
from tests.controlplane.conftest import Resources, call, create_zip_function
from tests.e2e.conftest import Server

SETOSA = [5.1, 3.5, 1.4, 0.2]


@pytest.fixture
def via_emulator(monkeypatch: pytest.MonkeyPatch, iris_server: Server) -> None:
    """Model functions are invoked at the emulator, which serves every function as "function"."""
    monkeypatch.setenv("SERVEML_LAMBDA_ENDPOINT_URL", iris_server.endpoint)
    monkeypatch.setenv("SERVEML_LOCAL_FUNCTION", "function")


def ready_deployment(token: str) -> str:
    """A deployment of Alice's whose build finished: ready, with its model function named."""
    created = call("POST", "/api/v1/deployments", token=token, json_body={"model_filename": "model.joblib"})
    deployment_id: str = created.body["id"]
    assert store.update_status(deployment_id, "ready", function_name=f"serveml-model-{deployment_id}")
    return deployment_id


@pytest.mark.usefixtures("via_emulator")
def test_a_prediction_goes_through_to_the_model(alice_token: str) -> None:
    # GIVEN a ready deployment served by a real runtime
    deployment_id = ready_deployment(alice_token)
    # WHEN Alice asks for a prediction
    reply = call("POST", f"/api/v1/predict/{deployment_id}", token=alice_token, json_body={"data": [SETOSA]})
    # THEN the model's own answer comes back, labels applied, with the rate-limit headers
    assert reply.status == 200, reply.body
    assert reply.body["predictions"] == ["setosa"]
    assert reply.body["model"]["name"] == "iris"
    assert reply.headers["Content-Type"] == "application/json"
    assert "X-RateLimit-Remaining" in reply.headers


@pytest.mark.usefixtures("via_emulator")
def test_the_runtimes_errors_keep_their_status(alice_token: str) -> None:
    # GIVEN a ready deployment
    deployment_id = ready_deployment(alice_token)
    # WHEN a request has two features where the model takes four
    reply = call("POST", f"/api/v1/predict/{deployment_id}", token=alice_token, json_body={"data": [[1.0, 2.0]]})
    # THEN the runtime's SHAPE_MISMATCH comes back as the 400 the runtime gives it
    assert reply.status == 400
    assert reply.body["error"]["code"] == "SHAPE_MISMATCH"


@pytest.mark.usefixtures("via_emulator")
def test_model_health_through_the_api(alice_token: str) -> None:
    deployment_id = ready_deployment(alice_token)
    # WHEN the model's health is asked for, directly and as part of the deployment's health
    direct = call("GET", f"/api/v1/predict/{deployment_id}/health", token=alice_token)
    overall = call("GET", f"/api/v1/deployments/{deployment_id}/health", token=alice_token)
    # THEN both carry the runtime's own health answer
    assert direct.status == 200, direct.body
    assert direct.body["model"]["name"] == "iris"
    assert overall.status == 200, overall.body
    assert overall.body["status"] == "ready"
    assert overall.body["health"] == direct.body or overall.body["health"]["model"] == direct.body["model"]


@pytest.mark.usefixtures("via_emulator")
def test_a_body_that_is_not_json_is_400_without_invoking(alice_token: str) -> None:
    deployment_id = ready_deployment(alice_token)
    reply = call("POST", f"/api/v1/predict/{deployment_id}", token=alice_token, body="data=1,2,3")
    assert reply.status == 400
    assert reply.body["error"]["code"] == "INVALID_JSON"


def test_a_function_error_is_a_502(resources: Resources, alice_token: str) -> None:
    # GIVEN a ready deployment whose function Lambda runs but which fails: moto has no Docker, so
    # its Lambda answers every invocation of a zip function with FunctionError "Handled"
    deployment_id = ready_deployment(alice_token)
    create_zip_function(f"serveml-model-{deployment_id}")
    # WHEN a prediction is asked for
    reply = call("POST", f"/api/v1/predict/{deployment_id}", token=alice_token, json_body={"data": [SETOSA]})
    # THEN the answer is a 502 MODEL_ERROR envelope, not the function's own error text
    assert reply.status == 502, reply.body
    assert reply.body["error"] == {"code": "MODEL_ERROR", "message": "The model function failed"}
    assert "docker" not in reply.raw


def test_a_missing_function_is_a_502(alice_token: str) -> None:
    # GIVEN a ready deployment whose function was deleted behind the API's back
    deployment_id = ready_deployment(alice_token)
    # WHEN a prediction is asked for
    reply = call("POST", f"/api/v1/predict/{deployment_id}", token=alice_token, json_body={"data": [SETOSA]})
    # THEN it is a 502 MODEL_ERROR naming Lambda's error code
    assert reply.status == 502
    assert reply.body["error"] == {
        "code": "MODEL_ERROR",
        "message": "The model function could not be invoked (ResourceNotFoundException)",
    }
