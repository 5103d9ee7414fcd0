"""Deployments: create with presigned uploads, list, read, delete, and nothing of anyone else's."""

from __future__ import annotations

import time
import urllib.parse
from datetime import UTC, datetime

import boto3
import pytest

from tests.controlplane.conftest import BUCKET, DEPLOYMENTS_TABLE, Resources, call, put

DEPLOYMENTS = "/api/v1/deployments"


def create(token: str, **body: object) -> dict[str, object]:
    reply = call("POST", DEPLOYMENTS, token=token, json_body={"model_filename": "model.joblib", **body})
    assert reply.status == 201, reply.body
    return dict(reply.body)


def keys_under(prefix: str) -> list[str]:
    listed = boto3.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return sorted(item["Key"] for item in listed.get("Contents", []))


def test_create_returns_presigned_uploads_that_land_in_the_bucket(resources: Resources, alice_token: str) -> None:
    # GIVEN Alice
    # WHEN she creates a deployment with requirements
    created = create(alice_token, requirements=True, name="iris")
    # THEN it is "uploading" with an id of the documented shape and two PUT URLs that expire
    assert created["status"] == "uploading"
    deployment_id = str(created["id"])
    assert deployment_id.startswith("dep-")
    assert len(deployment_id) == 16
    upload = created["upload"]
    assert isinstance(upload, dict)
    assert set(upload) == {"model", "requirements"}
    assert upload["model"]["expires_in"] == 900
    # AND PUTting the bytes to the URLs stores them under her prefix
    assert put(upload["model"]["url"], b"model bytes") == 200
    assert put(upload["requirements"]["url"], b"scikit-learn\n") == 200
    prefix = f"uploads/{resources.alice.user_id}/{deployment_id}/"
    assert keys_under(prefix) == [f"{prefix}model/model.joblib", f"{prefix}requirements.txt"]
    body = boto3.client("s3").get_object(Bucket=BUCKET, Key=f"{prefix}model/model.joblib")["Body"].read()
    assert body == b"model bytes"


def test_upload_urls_carry_their_expiry(monkeypatch: pytest.MonkeyPatch, alice_token: str) -> None:
    # GIVEN upload URLs valid for 1 s
    monkeypatch.setenv("SERVEML_UPLOAD_URL_TTL_S", "1")
    created = create(alice_token)
    url = created["upload"]["model"]["url"]  # type: ignore[index]
    # WHEN the URL is read
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    signed_at = datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
    # THEN it is a SigV4 URL that S3 refuses after 1 s (moto does not check expiry; S3 does)
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert query["X-Amz-Expires"] == ["1"]
    assert abs(signed_at - time.time()) < 60
    assert query["X-Amz-Signature"][0]


def test_listing_shows_only_the_callers_deployments(alice_token: str, bob_token: str) -> None:
    # GIVEN one deployment each for Alice and Bob
    mine = create(alice_token)["id"]
    theirs = create(bob_token)["id"]
    # WHEN Alice lists hers
    reply = call("GET", DEPLOYMENTS, token=alice_token)
    # THEN hers is there, newest first, and Bob's is not
    ids = [d["id"] for d in reply.body["deployments"]]
    assert mine in ids
    assert theirs not in ids
    created = [d["created_at"] for d in reply.body["deployments"]]
    assert created == sorted(created, reverse=True)


def test_get_shows_the_documented_fields(alice_token: str) -> None:
    deployment_id = create(alice_token)["id"]
    reply = call("GET", f"{DEPLOYMENTS}/{deployment_id}", token=alice_token)
    assert reply.status == 200
    assert {"id", "status", "reason", "created_at", "updated_at", "function_name"} <= set(reply.body)
    assert (reply.body["id"], reply.body["status"], reply.body["function_name"]) == (deployment_id, "uploading", None)


@pytest.mark.parametrize(
    ("method", "suffix"),
    [
        ("GET", ""),
        ("DELETE", ""),
        ("GET", "/logs"),
        ("GET", "/health"),
        ("POST", "/predict"),
        ("GET", "/predict/health"),
    ],
)
def test_another_users_deployment_is_not_found(alice_token: str, bob_token: str, method: str, suffix: str) -> None:
    # GIVEN Alice's deployment
    deployment_id = create(alice_token)["id"]
    path = (
        f"/api/v1/predict/{deployment_id}{suffix.removeprefix('/predict')}"
        if suffix.startswith("/predict")
        else f"{DEPLOYMENTS}/{deployment_id}{suffix}"
    )
    # WHEN Bob asks for it in any way
    reply = call(method, path, token=bob_token, json_body={"data": [[1, 2, 3, 4]]} if method == "POST" else None)
    # THEN it does not exist for him (404, never 403)
    assert reply.status == 404
    assert reply.body == {"error": {"code": "NOT_FOUND", "message": "Deployment not found"}}
    # AND it is still there for Alice
    assert call("GET", f"{DEPLOYMENTS}/{deployment_id}", token=alice_token).status == 200


@pytest.mark.parametrize(
    "bad_id",
    [
        "../x",
        "..%2F..%2Fusers",
        "%2e%2e",
        "dep-1;rm",
        "dep-1;rm -rf",
        "dep-ABCDEF123456",
        "dep-0000000000000",
        "' OR 1=1 --",
        "dep-",
    ],
)
@pytest.mark.parametrize("suffix", ["", "/logs"])
def test_malformed_ids_are_404_envelopes(alice_token: str, bad_id: str, suffix: str) -> None:
    # WHEN an id that is not dep-<12 hex> reaches a route (as a path segment or across segments)
    reply = call("GET", f"{DEPLOYMENTS}/{bad_id}{suffix}", token=alice_token)
    # THEN the answer is a 404 envelope, never a 500
    assert reply.status == 404
    assert reply.body["error"]["code"] == "NOT_FOUND"
    for method in ("DELETE", "POST"):
        path = f"{DEPLOYMENTS}/{bad_id}" if method == "DELETE" else f"/api/v1/predict/{bad_id}"
        other = call(method, path, token=alice_token, json_body={"data": []} if method == "POST" else None)
        assert other.status == 404, (method, path, other.body)


def test_delete_removes_the_record_and_its_objects(resources: Resources, alice_token: str) -> None:
    # GIVEN a deployment with both uploads in the bucket
    created = create(alice_token, requirements=True)
    deployment_id = created["id"]
    assert put(created["upload"]["model"]["url"], b"m") == 200  # type: ignore[index]
    assert put(created["upload"]["requirements"]["url"], b"r\n") == 200  # type: ignore[index]
    # WHEN Alice deletes it
    reply = call("DELETE", f"{DEPLOYMENTS}/{deployment_id}", token=alice_token)
    # THEN it is gone: record, objects, and a second look is a 404
    assert reply.status == 204
    assert keys_under(f"uploads/{resources.alice.user_id}/{deployment_id}/") == []
    item = boto3.client("dynamodb").get_item(TableName=DEPLOYMENTS_TABLE, Key={"id": {"S": str(deployment_id)}})
    assert "Item" not in item
    assert call("GET", f"{DEPLOYMENTS}/{deployment_id}", token=alice_token).status == 404


def test_oversized_bodies_are_413_before_parsing(monkeypatch: pytest.MonkeyPatch, alice_token: str) -> None:
    # GIVEN a 1 KiB body limit
    monkeypatch.setenv("SERVEML_MAX_BODY_BYTES", "1024")
    # WHEN a body over it arrives (not even JSON)
    reply = call("POST", DEPLOYMENTS, token=alice_token, body="x" * 2000)
    # THEN it is refused as too large
    assert reply.status == 413
    assert reply.body["error"]["code"] == "PAYLOAD_TOO_LARGE"


@pytest.mark.parametrize(
    "body",
    [
        "{",
        "[]",
        '{"model_filename": "../../etc/passwd.pkl"}',
        '{"model_filename": "model.exe"}',
        '{"model_filename": "dir/model.joblib"}',
        '{"model_filename": ".pkl"}',
        '{"model_filename": 7}',
        '{"model_filename": "model.joblib", "requirements": "yes"}',
        '{"model_filename": "model.joblib", "name": ["x"]}',
        '{"model_filename": "model.joblib", "typo": 1}',
        "{}",
    ],
)
def test_bad_create_bodies_are_400(alice_token: str, body: str) -> None:
    reply = call("POST", DEPLOYMENTS, token=alice_token, body=body)
    assert reply.status == 400, reply.body
    assert reply.body["error"]["code"] in ("INVALID_INPUT", "INVALID_JSON")
    assert reply.body["error"]["message"]


@pytest.mark.parametrize("filename", ["model.pkl.gz", "net.pt2", "model.onnx", "model.keras", "weights.h5", "m.skops"])
def test_every_known_model_suffix_is_accepted(alice_token: str, filename: str) -> None:
    assert create(alice_token, model_filename=filename)["status"] == "uploading"


def test_logs_and_health_before_any_build(alice_token: str) -> None:
    # GIVEN a deployment still waiting for its upload
    deployment_id = create(alice_token)["id"]
    # WHEN its logs and health are asked for
    logs = call("GET", f"{DEPLOYMENTS}/{deployment_id}/logs", token=alice_token, query={"type": "build"})
    health = call("GET", f"{DEPLOYMENTS}/{deployment_id}/health", token=alice_token)
    predict = call("POST", f"/api/v1/predict/{deployment_id}", token=alice_token, json_body={"data": [[1, 2, 3, 4]]})
    # THEN there are no log lines yet, the health is its status, and predictions are refused as not ready
    assert (logs.status, logs.body["events"]) == (200, [])
    assert (health.status, health.body) == (200, {"id": deployment_id, "status": "uploading"})
    assert predict.status == 409
    assert predict.body["error"]["code"] == "NOT_READY"


@pytest.mark.parametrize("query", [{"type": "nope"}, {"tail": "0"}, {"tail": "1001"}, {"tail": "ten"}])
def test_bad_log_queries_are_400(alice_token: str, query: dict[str, str]) -> None:
    deployment_id = create(alice_token)["id"]
    reply = call("GET", f"{DEPLOYMENTS}/{deployment_id}/logs", token=alice_token, query=query)
    assert reply.status == 400
    assert reply.body["error"]["code"] == "INVALID_INPUT"


def test_unknown_routes_are_404_envelopes(alice_token: str) -> None:
    reply = call("GET", "/api/v1/nothing-here", token=alice_token)
    assert reply.status == 404
    assert reply.body["error"]["code"] == "NOT_FOUND"
