"""The build pipeline, end to end over the events AWS sends: an upload is validated and built,
a finished build becomes a model function, and bad models end failed with the reason."""

from __future__ import annotations

import os
import pickle
import re
import time
import urllib.parse
from pathlib import Path
from typing import Any

import boto3
import pytest

from controlplane import lifecycle, pipeline, store
from runtime.context import LocalContext
from tests.controlplane.conftest import (
    ACCOUNT_ID,
    BUCKET,
    ECR_REPOSITORY,
    MODEL_ROLE_ARN,
    PROJECT,
    REGION,
    Resources,
    call,
    put,
)

DEPLOYMENTS = "/api/v1/deployments"


@pytest.fixture(scope="module")
def iris_model(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real scikit-learn model: LogisticRegression fitted on iris, as joblib bytes."""
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    iris = load_iris()
    path = tmp_path_factory.mktemp("iris") / "model.joblib"
    joblib.dump(LogisticRegression(max_iter=1000).fit(iris.data, iris.target), path)
    return path.read_bytes()


def s3_event(key: str, size: int) -> dict[str, Any]:
    """The S3 ObjectCreated notification Lambda receives for one upload (keys arrive URL-encoded)."""
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": REGION,
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "bucket": {"name": BUCKET, "arn": f"arn:aws:s3:::{BUCKET}"},
                    "object": {"key": urllib.parse.quote_plus(key, safe="/"), "size": size},
                },
            }
        ]
    }


def build_event(
    deployment_id: str, build_id: str, status: str, phases: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """CodeBuild's "Build State Change" event, as EventBridge delivers it."""
    arn = f"arn:aws:codebuild:{REGION}:{ACCOUNT_ID}:build/{build_id}"
    return {
        "version": "0",
        "id": "event",
        "detail-type": "CodeBuild Build State Change",
        "source": "aws.codebuild",
        "account": ACCOUNT_ID,
        "region": REGION,
        "resources": [arn],
        "detail": {
            "build-status": status,
            "project-name": PROJECT,
            "build-id": arn,
            "additional-information": {
                "environment": {
                    "environment-variables": [{"name": "DEPLOYMENT_ID", "value": deployment_id, "type": "PLAINTEXT"}]
                },
                "phases": phases or [],
            },
        },
    }


def upload(token: str, filename: str, data: bytes) -> tuple[str, str]:
    """Create a deployment through the API and PUT the model to its presigned URL; (id, key)."""
    created = call("POST", DEPLOYMENTS, token=token, json_body={"model_filename": filename})
    assert created.status == 201, created.body
    assert put(created.body["upload"]["model"]["url"], data) == 200
    deployment = store.get_deployment(created.body["id"])
    assert deployment is not None
    return deployment.id, deployment.model_key


def status_of(token: str, deployment_id: str) -> dict[str, Any]:
    reply = call("GET", f"{DEPLOYMENTS}/{deployment_id}", token=token)
    assert reply.status == 200, reply.body
    body: dict[str, Any] = reply.body
    return body


def test_an_uploaded_model_is_validated_built_and_deployed(
    resources: Resources, alice_token: str, iris_model: bytes
) -> None:
    # GIVEN a deployment whose model Alice uploaded through the presigned URL
    deployment_id, key = upload(alice_token, "model.joblib", iris_model)
    # WHEN S3 reports the upload
    result = pipeline.handler(s3_event(key, len(iris_model)), LocalContext())
    # THEN the model passed validation and a CodeBuild build was started for it
    assert result["results"] == [{"deployment_id": deployment_id, "outcome": "building"}]
    shown = status_of(alice_token, deployment_id)
    assert (shown["status"], shown["reason"]) == ("building", None)
    record = store.get_deployment(deployment_id)
    assert record is not None
    assert record.build_id is not None
    assert record.image_uri == f"{ECR_REPOSITORY}:{deployment_id}"
    assert record.build_id in boto3.client("codebuild").list_builds_for_project(projectName=PROJECT)["ids"]

    # AND a duplicate S3 delivery changes nothing
    again = pipeline.handler(s3_event(key, len(iris_model)), LocalContext())
    assert again["results"][0]["outcome"].startswith("skipped")

    # WHEN CodeBuild reports the build succeeded
    done = pipeline.build_handler(build_event(deployment_id, record.build_id, "SUCCEEDED"), LocalContext())
    # THEN the model function exists in Lambda, from the built image, and the deployment is ready
    assert done["results"] == [{"deployment_id": deployment_id, "outcome": "ready"}]
    shown = status_of(alice_token, deployment_id)
    assert (shown["status"], shown["function_name"]) == ("ready", f"serveml-model-{deployment_id}")
    function = boto3.client("lambda").get_function(FunctionName=f"serveml-model-{deployment_id}")
    config = function["Configuration"]
    assert config["PackageType"] == "Image"
    assert (config["MemorySize"], config["Timeout"], config["Role"]) == (2048, 30, MODEL_ROLE_ARN)
    assert function["Code"]["ImageUri"] == f"{ECR_REPOSITORY}:{deployment_id}"

    # AND its build and runtime logs can be read back, tail first
    logs = boto3.client("logs")
    build_group, build_stream = f"/aws/codebuild/{PROJECT}", record.build_id.split(":")[1]
    logs.create_log_group(logGroupName=build_group)
    logs.create_log_stream(logGroupName=build_group, logStreamName=build_stream)
    now = int(time.time() * 1000)
    logs.put_log_events(
        logGroupName=build_group,
        logStreamName=build_stream,
        logEvents=[{"timestamp": now + i, "message": f"build line {i}"} for i in range(5)],
    )
    runtime_group = f"/aws/lambda/serveml-model-{deployment_id}"
    logs.create_log_group(logGroupName=runtime_group)
    for stream, offset in (("2026/01/01/[$LATEST]a", 0), ("2026/01/01/[$LATEST]b", 10)):
        logs.create_log_stream(logGroupName=runtime_group, logStreamName=stream)
        logs.put_log_events(
            logGroupName=runtime_group,
            logStreamName=stream,
            logEvents=[{"timestamp": now + offset + i, "message": f"{stream[-1]}{i}"} for i in range(3)],
        )
    build_logs = call(
        "GET", f"{DEPLOYMENTS}/{deployment_id}/logs", token=alice_token, query={"type": "build", "tail": "2"}
    )
    runtime_logs = call("GET", f"{DEPLOYMENTS}/{deployment_id}/logs", token=alice_token, query={"tail": "4"})
    assert [e["message"] for e in build_logs.body["events"]] == ["build line 3", "build line 4"]
    assert [e["message"] for e in runtime_logs.body["events"]] == ["a2", "b0", "b1", "b2"]

    # AND deleting the deployment deletes its function too
    assert call("DELETE", f"{DEPLOYMENTS}/{deployment_id}", token=alice_token).status == 204
    names = [f["FunctionName"] for f in boto3.client("lambda").list_functions()["Functions"]]
    assert f"serveml-model-{deployment_id}" not in names


def test_a_new_image_for_an_existing_function_updates_it(alice_token: str) -> None:
    # GIVEN a deployment being built whose model function already exists (a redeploy)
    deployment_id, _ = upload(alice_token, "model.joblib", b"not checked here")
    image = f"{ECR_REPOSITORY}:{deployment_id}-2"
    assert store.update_status(deployment_id, "building", build_id=f"{PROJECT}:build-2", image_uri=image)
    boto3.client("lambda").create_function(
        FunctionName=f"serveml-model-{deployment_id}",
        PackageType="Image",
        Code={"ImageUri": f"{ECR_REPOSITORY}:old"},
        Role=MODEL_ROLE_ARN,
    )
    # WHEN its build succeeds
    pipeline.handler(build_event(deployment_id, f"{PROJECT}:build-2", "SUCCEEDED"), LocalContext())
    # THEN the existing function now runs the new image
    function = boto3.client("lambda").get_function(FunctionName=f"serveml-model-{deployment_id}")
    assert function["Code"]["ImageUri"] == image
    assert status_of(alice_token, deployment_id)["status"] == "ready"


def test_a_failed_build_fails_the_deployment_with_the_phase_that_failed(alice_token: str) -> None:
    # GIVEN a deployment being built
    deployment_id, _ = upload(alice_token, "model.joblib", b"x")
    assert store.update_status(deployment_id, "building", build_id=f"{PROJECT}:b-3", image_uri="img:1")
    phases = [
        {"phase-type": "INSTALL", "phase-status": "SUCCEEDED"},
        {
            "phase-type": "BUILD",
            "phase-status": "FAILED",
            "phase-context": ["COMMAND_EXECUTION_ERROR: docker build exited 1"],
        },
    ]
    # WHEN a stale build's event arrives, then its own build's failure
    stale = pipeline.handler(build_event(deployment_id, f"{PROJECT}:old", "FAILED"), LocalContext())
    assert stale["results"][0]["outcome"].startswith("skipped")
    pipeline.handler(build_event(deployment_id, f"{PROJECT}:b-3", "FAILED", phases), LocalContext())
    # THEN it is failed, saying which phase failed and why
    shown = status_of(alice_token, deployment_id)
    assert shown["status"] == "failed"
    assert shown["reason"] == "Image build failed: BUILD phase FAILED: COMMAND_EXECUTION_ERROR: docker build exited 1"


class _Hostile:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def test_a_hostile_pickle_is_refused_by_name_and_never_loaded(tmp_path: Path, alice_token: str) -> None:
    # GIVEN a pickle that would run a shell command when loaded
    marker = tmp_path / "pwned"
    data = pickle.dumps(_Hostile(marker))
    deployment_id, key = upload(alice_token, "model.pkl", data)
    # WHEN the pipeline sees it
    pipeline.handler(s3_event(key, len(data)), LocalContext())
    # THEN the deployment failed, naming the refused global, and the command never ran
    shown = status_of(alice_token, deployment_id)
    assert shown["status"] == "failed"
    assert re.search(r"\b(os|posix)\.system\b", shown["reason"]), shown["reason"]
    assert "Refusing model.pkl" in shown["reason"]
    assert not marker.exists()


@pytest.mark.parametrize(
    ("filename", "data"),
    [("model.joblib", b"\x80\x04 this is not a pickle at all"), ("model.onnx", b"not an onnx graph")],
)
def test_a_corrupt_model_fails_validation(alice_token: str, filename: str, data: bytes) -> None:
    # GIVEN a model file that is not what its name says
    deployment_id, key = upload(alice_token, filename, data)
    # WHEN the pipeline validates it
    result = pipeline.handler(s3_event(key, len(data)), LocalContext())
    # THEN the deployment failed with the builder's "Model validation failed" reason, and no build started
    assert result["results"][0]["outcome"] == "failed"
    shown = status_of(alice_token, deployment_id)
    assert shown["status"] == "failed"
    assert shown["reason"].startswith("Model validation failed"), shown["reason"]
    record = store.get_deployment(deployment_id)
    assert record is not None
    assert record.build_id is None


def test_validation_waits_for_the_last_upload_whichever_it_is(alice_token: str) -> None:
    # GIVEN a deployment that asked for requirements, and only its model has arrived
    created = call(
        "POST", DEPLOYMENTS, token=alice_token, json_body={"model_filename": "m.joblib", "requirements": True}
    )
    model = b"\x80\x04 not really a model"
    assert put(created.body["upload"]["model"]["url"], model) == 200
    record = store.get_deployment(created.body["id"])
    assert record is not None
    assert record.requirements_key is not None
    # WHEN the model upload is reported
    first = pipeline.handler(s3_event(record.model_key, len(model)), LocalContext())
    # THEN the deployment keeps waiting for requirements.txt
    assert first["results"][0]["outcome"] == "waiting: requirements.txt"
    assert status_of(alice_token, record.id)["status"] == "uploading"
    # WHEN requirements.txt lands and is reported
    assert put(created.body["upload"]["requirements"]["url"], b"scikit-learn\n") == 200
    second = pipeline.handler(s3_event(record.requirements_key, 13), LocalContext())
    # THEN validation runs (and, for this model, fails with the reason)
    assert second["results"][0]["outcome"] == "failed"
    shown = status_of(alice_token, record.id)
    assert shown["status"] == "failed"
    assert shown["reason"].startswith("Model validation failed: m.joblib is not a readable pickle"), shown["reason"]


def test_an_unexpected_error_fails_the_deployment_with_a_reason(
    monkeypatch: pytest.MonkeyPatch, alice_token: str
) -> None:
    # GIVEN a deployment being built, and a model role that does not exist (a misconfiguration)
    monkeypatch.setenv("SERVEML_MODEL_ROLE_ARN", f"arn:aws:iam::{ACCOUNT_ID}:role/no-such-role")
    deployment_id, _ = upload(alice_token, "model.joblib", b"x")
    assert store.update_status(deployment_id, "building", build_id=f"{PROJECT}:b-4", image_uri="img:4")
    # WHEN the build succeeds and the function cannot be created
    result = pipeline.handler(build_event(deployment_id, f"{PROJECT}:b-4", "SUCCEEDED"), LocalContext())
    # THEN the deployment is not stuck in building: it failed, saying which step broke
    assert result["results"][0]["outcome"] == "failed"
    shown = status_of(alice_token, deployment_id)
    assert shown["status"] == "failed"
    assert shown["reason"].startswith(
        "Internal error while creating the model function: InvalidParameterValueException"
    ), shown["reason"]


def test_events_for_other_keys_are_ignored(resources: Resources) -> None:
    for key in (f"uploads/{resources.alice.user_id}/dep-000000000000/other.txt", "source/serveml.tar.gz"):
        assert pipeline.handler(s3_event(key, 3), LocalContext()) == {"results": []}
    stray = s3_event(f"uploads/{resources.alice.user_id}/dep-000000000000/model/m.joblib", 3)
    assert pipeline.handler(stray, LocalContext())["results"][0]["outcome"] == "skipped: no such deployment"


def test_lifecycle_decisions() -> None:
    # The pure decisions, table by table.
    assert [lifecycle.on_upload(s) for s in store.STATUSES] == [
        lifecycle.Transition("validating"),
        None,
        None,
        lifecycle.Transition("validating"),
        lifecycle.Transition("validating"),
    ]
    state = lifecycle.BuildState("dep-000000000000", "p:1", "SUCCEEDED", None)
    assert lifecycle.on_build_state("building", "p:1", state) == lifecycle.Transition("ready")
    assert lifecycle.on_build_state("building", "p:2", state) is None
    assert lifecycle.on_build_state("ready", "p:1", state) is None
    in_progress = lifecycle.BuildState("dep-000000000000", "p:1", "IN_PROGRESS", None)
    assert lifecycle.on_build_state("building", "p:1", in_progress) is None
    for status in ("FAILED", "FAULT", "STOPPED", "TIMED_OUT"):
        failed = lifecycle.BuildState("dep-000000000000", "p:1", status, None)
        outcome = lifecycle.on_build_state("building", "p:1", failed)
        assert outcome is not None
        assert outcome.status == "failed"
        assert outcome.reason
    assert lifecycle.after_validation(None) == lifecycle.Transition("building")
    assert lifecycle.after_validation("x" * 5000).reason is not None
    assert len(lifecycle.after_validation("x" * 5000).reason or "") == 1000
    assert (
        lifecycle.upload(
            {
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": "b"}, "object": {"key": "uploads/u/dep-../model/x"}},
            }
        )
        is None
    )


def test_upload_keys_are_parsed_from_s3_records() -> None:
    def record(key: str, event: str = "ObjectCreated:Put") -> dict[str, Any]:
        return {"eventName": event, "s3": {"bucket": {"name": "b"}, "object": {"key": key}}}

    prefix = "uploads/usr-1/dep-0123456789ab"
    assert lifecycle.upload(record(f"{prefix}/model/my+model.joblib")) == lifecycle.Upload(
        "b", f"{prefix}/model/my model.joblib", "usr-1", "dep-0123456789ab", "model"
    )
    assert lifecycle.upload(record(f"{prefix}/requirements.txt")) == lifecycle.Upload(
        "b", f"{prefix}/requirements.txt", "usr-1", "dep-0123456789ab", "requirements"
    )
    assert lifecycle.upload(record(f"{prefix}/requirements.txt", "ObjectRemoved:Delete")) is None
    assert lifecycle.upload(record(f"{prefix}/model/a/b.joblib")) is None
    assert lifecycle.upload(record("uploads/usr-1/dep-XYZ/model/m.joblib")) is None
