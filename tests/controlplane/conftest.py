"""Fixtures for the control plane: a real moto server process (every AWS API the control plane
calls), the tables, bucket, signing secret and CodeBuild project it expects, two users, and a
helper that calls ``controlplane.api.handler`` with API Gateway HTTP API (v2) events."""

from __future__ import annotations

import io
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from runtime.context import LocalContext
from tests.e2e.conftest import Server, free_port, running_server

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
ACCOUNT_ID = "123456789012"
MOTO_START_TIMEOUT_S = 30.0

USERS_TABLE = "serveml-users-test"
DEPLOYMENTS_TABLE = "serveml-deployments-test"
RATE_TABLE = "serveml-rate-test"
BUCKET = "serveml-models-test"
SECRET_PARAM = "/serveml/test/jwt-secret"
PROJECT = "serveml-model-build-test"
ECR_REPOSITORY = f"{ACCOUNT_ID}.dkr.ecr.{REGION}.amazonaws.com/serveml-models"
MODEL_ROLE_ARN = f"arn:aws:iam::{ACCOUNT_ID}:role/serveml-model"
#: The iris example's labels.
LABELS = {"0": "setosa", "1": "versicolor", "2": "virginica"}

# Loopback only: an HTTP(S)_PROXY from the environment must not see these requests.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def moto_server_command() -> list[str]:
    # moto_server itself, serving one request at a time (see moto_serial for why).
    return [sys.executable, "-m", "tests.controlplane.moto_serial"]


def _wait_for_moto(process: subprocess.Popen[bytes], endpoint: str, log: Path) -> None:
    deadline = time.monotonic() + MOTO_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"moto_server exited with {process.returncode}:\n{log.read_text(errors='replace')}")
        try:
            with OPENER.open(f"{endpoint}/moto-api/data.json", timeout=2):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.1)
    raise AssertionError(f"moto_server did not answer in {MOTO_START_TIMEOUT_S} s:\n{log.read_text(errors='replace')}")


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A moto server on a free loopback port, for the whole session."""
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto_server.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [*moto_server_command(), "-H", "127.0.0.1", "-p", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            # No Docker for moto: its Lambda then answers every invoke with FunctionError "Handled"
            # ("error running docker") instead of pulling images. Invocations that must succeed go
            # to a real runtime under the Runtime Interface Emulator (SERVEML_LAMBDA_ENDPOINT_URL).
            env={**os.environ, "DOCKER_HOST": "unix:///nonexistent/docker.sock"},
            start_new_session=True,
        )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        _wait_for_moto(process, endpoint, log)
        yield endpoint
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="session")
def aws_env(moto_endpoint: str) -> Iterator[dict[str, str]]:
    """The environment the handlers run with: moto for AWS, the test resources' names."""
    variables = {
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
        "SERVEML_USERS_TABLE": USERS_TABLE,
        "SERVEML_DEPLOYMENTS_TABLE": DEPLOYMENTS_TABLE,
        "SERVEML_RATE_TABLE": RATE_TABLE,
        "SERVEML_BUCKET": BUCKET,
        "SERVEML_JWT_SECRET_PARAM": SECRET_PARAM,
        "SERVEML_CODEBUILD_PROJECT": PROJECT,
        "SERVEML_ECR_REPOSITORY": ECR_REPOSITORY,
        "SERVEML_MODEL_ROLE_ARN": MODEL_ROLE_ARN,
        # High enough that no test but the rate-limit one ever meets it.
        "SERVEML_RATE_LIMIT": "100000",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in variables.items():
            patch.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "SERVEML_LOCAL_FUNCTION", "SERVEML_LAMBDA_ENDPOINT_URL"):
            patch.delenv(name, raising=False)
        yield variables


@dataclass(frozen=True)
class Account:
    email: str
    password: str
    user_id: str


@dataclass(frozen=True)
class Resources:
    secret: str
    alice: Account
    bob: Account


def _create_tables(dynamodb: Any) -> None:
    def create(name: str, key: str, **extra: Any) -> None:
        attributes = [{"AttributeName": key, "AttributeType": "S"}, *extra.pop("attributes", [])]
        dynamodb.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
            AttributeDefinitions=attributes,
            BillingMode="PAY_PER_REQUEST",
            **extra,
        )

    create(USERS_TABLE, "email")
    create(
        DEPLOYMENTS_TABLE,
        "id",
        attributes=[
            {"AttributeName": "owner", "AttributeType": "S"},
            {"AttributeName": "created_at", "AttributeType": "S"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "owner-index",
                "KeySchema": [
                    {"AttributeName": "owner", "KeyType": "HASH"},
                    {"AttributeName": "created_at", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    )
    create(RATE_TABLE, "key")
    dynamodb.update_time_to_live(
        TableName=RATE_TABLE, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"}
    )


@pytest.fixture(scope="session")
def resources(aws_env: dict[str, str]) -> Resources:
    """Tables (with the owner index), bucket, SecureString secret, CodeBuild project, two users."""
    from controlplane import settings, store

    settings.current.cache_clear()
    _create_tables(boto3.client("dynamodb"))
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    secret = secrets.token_urlsafe(48)
    boto3.client("ssm").put_parameter(Name=SECRET_PARAM, Value=secret, Type="SecureString")
    # Lambda (and moto) only take a role that exists and trusts lambda.amazonaws.com.
    boto3.client("iam").create_role(
        RoleName=MODEL_ROLE_ARN.rpartition("/")[2],
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
                ],
            }
        ),
    )
    boto3.client("codebuild").create_project(
        name=PROJECT,
        # moto wants a location even for NO_SOURCE; the real project's buildspec is the lead's template.
        source={"type": "S3", "location": f"{BUCKET}/build/source.zip"},
        artifacts={"type": "NO_ARTIFACTS"},
        environment={
            "type": "LINUX_CONTAINER",
            "image": "aws/codebuild/standard:7.0",
            "computeType": "BUILD_GENERAL1_SMALL",
            "privilegedMode": True,
        },
        serviceRole=f"arn:aws:iam::{ACCOUNT_ID}:role/serveml-codebuild",
    )
    accounts = []
    for name in ("alice", "bob"):
        email, password = f"{name}@example.com", f"{name}-correct-horse-battery"
        accounts.append(Account(email, password, store.create_user(email, password).user_id))
    return Resources(secret=secret, alice=accounts[0], bob=accounts[1])


@pytest.fixture(autouse=True)
def fresh_settings(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test reads the environment anew (tests change limits and endpoints with monkeypatch)."""
    from controlplane import settings

    settings.current.cache_clear()
    yield
    settings.current.cache_clear()


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: Any
    raw: str


def http_event(
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    body: str | None = None,
    query: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload format 2.0) event, as Lambda receives it."""
    raw_query = urllib.parse.urlencode(query or {})
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": raw_query,
        "headers": {"host": "api.example.test", **{k.lower(): v for k, v in (headers or {}).items()}},
        "requestContext": {
            "accountId": ACCOUNT_ID,
            "apiId": "api",
            "domainName": "api.example.test",
            "domainPrefix": "api",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "pytest",
            },
            "requestId": "req",
            "routeKey": "$default",
            "stage": "$default",
            "time": "03/Dec/2026:16:00:00 +0000",
            "timeEpoch": int(time.time() * 1000),
        },
        "isBase64Encoded": False,
    }
    if query:
        event["queryStringParameters"] = query
    if body is not None:
        event["body"] = body
    return event


def call(
    method: str,
    path: str,
    *,
    token: str | None = None,
    headers: dict[str, str] | None = None,
    json_body: Any = None,
    body: str | None = None,
    query: dict[str, str] | None = None,
) -> Reply:
    """Invoke ``controlplane.api.handler`` and decode its answer."""
    from controlplane.api import handler

    sent = dict(headers or {})
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    if json_body is not None:
        body = json.dumps(json_body)
        sent.setdefault("Content-Type", "application/json")
    response = handler(http_event(method, path, headers=sent, body=body, query=query), LocalContext(timeout_s=30))
    raw = response.get("body") or ""
    try:
        decoded = json.loads(raw) if raw else None
    except ValueError:
        decoded = None
    return Reply(response["statusCode"], dict(response.get("headers") or {}), decoded, raw)


def login(account: Account) -> str:
    reply = call("POST", "/api/v1/auth/login", json_body={"email": account.email, "password": account.password})
    assert reply.status == 200, reply.body
    token: str = reply.body["token"]
    return token


@pytest.fixture(scope="session")
def alice_token(resources: Resources) -> str:
    return login(resources.alice)


@pytest.fixture(scope="session")
def bob_token(resources: Resources) -> str:
    return login(resources.bob)


def put(url: str, data: bytes) -> int:
    """PUT bytes to a presigned URL the way a client would; the HTTP status."""
    # An explicit type: urllib's default (form-urlencoded) makes moto's server read the body as a form.
    request = urllib.request.Request(url, data=data, method="PUT", headers={"Content-Type": "application/octet-stream"})
    try:
        with OPENER.open(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        with error:
            return int(error.code)


def create_zip_function(name: str) -> None:
    """A plain zip function in moto's Lambda (which, without Docker, fails every invocation of it)."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("app.py", "def handler(event, context):\n    return event\n")
    boto3.client("lambda").create_function(
        FunctionName=name,
        Runtime="python3.11",
        Handler="app.handler",
        Code={"ZipFile": archive.getvalue()},
        Role=MODEL_ROLE_ARN,
    )


def unauthorized_envelope() -> dict[str, Any]:
    return {"error": {"code": "UNAUTHORIZED", "message": "Invalid or expired token"}}


@pytest.fixture(scope="session")
def iris_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``serveml serve`` of an iris LogisticRegression with the example's labels."""
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    iris = load_iris()
    folder = tmp_path_factory.mktemp("iris-model")
    joblib.dump(LogisticRegression(max_iter=1000).fit(iris.data, iris.target), folder / "model.joblib")
    manifest = {
        "name": "iris",
        "version": "1.0.0",
        "framework": "sklearn",
        "labels": LABELS,
        "inputs": [{"name": "input", "dtype": "float64", "shape": [-1, 4]}],
    }
    (folder / "serveml.json").write_text(json.dumps(manifest))
    with running_server(folder, tmp_path_factory.mktemp("serve-logs")) as server:
        yield server
