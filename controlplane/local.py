"""The control plane on this machine, for trying the API by hand: ``serveml controlplane``.

``run`` starts a real moto server (``moto_server -H 127.0.0.1 -p P``), points boto3 at it,
creates everything the API reads and writes there (``bootstrap``), adds a demo user, and serves
``controlplane.api.handler`` over HTTP on 127.0.0.1 by turning each request into the API Gateway
HTTP API (payload format 2.0) event that Lambda would receive, until Ctrl-C stops both.

What it does not do: the build pipeline is not triggered. Uploads land in moto's S3, whose event
notifications go nowhere here, so a deployment stays ``uploading``; everything else (login, rate
limits, presigned uploads, status, logs, a predict refused as not ready) behaves as deployed.

``bootstrap`` is also meant for tests: under ``moto.mock_aws`` it makes the same resources in
process and returns the ``SERVEML_*`` variables that name them.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any

import boto3
from botocore.exceptions import ClientError

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"
HOST = "127.0.0.1"
#: API Gateway refuses bodies over 10 MB before Lambda sees them; so does this server.
MAX_BODY_BYTES = 10 * 1024 * 1024
#: API Gateway's HTTP API integration timeout: the handler's deadline in the context.
INTEGRATION_TIMEOUT_S = 30.0
MOTO_START_TIMEOUT_S = 30.0
MOTO_STOP_TIMEOUT_S = 10.0

#: Resource names where neither the settings nor the environment give one.
DEFAULTS: dict[str, str] = {
    "SERVEML_USERS_TABLE": "serveml-users",
    "SERVEML_DEPLOYMENTS_TABLE": "serveml-deployments",
    "SERVEML_RATE_TABLE": "serveml-rate-limits",
    "SERVEML_BUCKET": "serveml-models-local",
    "SERVEML_JWT_SECRET_PARAM": "/serveml/jwt-secret",
    "SERVEML_JWT_SECRET_SOURCE": "ssm",
    "SERVEML_CODEBUILD_PROJECT": "serveml-model-build",
    "SERVEML_ECR_REPOSITORY": "serveml-models",
    "SERVEML_MODEL_ROLE_ARN": f"arn:aws:iam::{ACCOUNT_ID}:role/serveml-model",
}
#: ``Settings`` attribute for each variable, to read names from a settings object.
_SETTINGS_FIELDS = {
    "SERVEML_USERS_TABLE": "users_table",
    "SERVEML_DEPLOYMENTS_TABLE": "deployments_table",
    "SERVEML_RATE_TABLE": "rate_table",
    "SERVEML_BUCKET": "bucket",
    "SERVEML_JWT_SECRET_PARAM": "jwt_secret_param",
    "SERVEML_JWT_SECRET_SOURCE": "jwt_secret_source",
    "SERVEML_CODEBUILD_PROJECT": "codebuild_project",
    "SERVEML_ECR_REPOSITORY": "ecr_repository",
    "SERVEML_MODEL_ROLE_ARN": "model_role_arn",
}
OWNER_INDEX = "owner-index"
_CODEBUILD_ROLE = "serveml-codebuild"
# Hop-by-hop headers and the length: this server writes its own.
_SKIPPED_RESPONSE_HEADERS = frozenset({"content-length", "connection", "transfer-encoding", "keep-alive"})


class LocalError(Exception):
    """The local control plane could not start: printed as one line by the CLI."""


# -- bootstrap ----------------------------------------------------------------------------------


def resource_names(settings_or_env: object | Mapping[str, str] | None = None) -> dict[str, str]:
    """The ``SERVEML_*`` names to create: from a ``Settings``, an environment mapping, else defaults."""
    names = dict(DEFAULTS)
    if settings_or_env is None:
        return names
    for variable, attribute in _SETTINGS_FIELDS.items():
        if isinstance(settings_or_env, Mapping):
            value = settings_or_env.get(variable)
        else:
            value = getattr(settings_or_env, attribute, None)
        if isinstance(value, str) and value.strip():
            names[variable] = value.strip()
    return names


def bootstrap(settings_or_env: object | Mapping[str, str] | None = None) -> dict[str, str]:
    """Create the tables, bucket, signing secret, ECR repository, roles and CodeBuild project.

    Names come from ``settings_or_env`` (a ``controlplane.settings.Settings`` or a mapping of
    ``SERVEML_*`` variables; missing ones take ``DEFAULTS``). boto3 is used as the environment
    configures it: against a moto server (``AWS_ENDPOINT_URL``) or inside ``moto.mock_aws``.
    Safe to call twice: what exists is kept (the signing secret too, so tokens stay valid).
    Returns the ``SERVEML_*`` variables naming everything, for ``os.environ`` or a test's monkeypatch.
    """
    names = resource_names(settings_or_env)
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    _create_table(dynamodb, names["SERVEML_USERS_TABLE"], "email")
    _create_table(
        dynamodb,
        names["SERVEML_DEPLOYMENTS_TABLE"],
        "id",
        index=(OWNER_INDEX, "owner", "created_at"),
    )
    _create_table(dynamodb, names["SERVEML_RATE_TABLE"], "key", ttl_attribute="expires_at")

    s3 = boto3.client("s3", region_name=REGION)
    with _exists_ok("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
        s3.create_bucket(Bucket=names["SERVEML_BUCKET"])

    _create_signing_secret(names["SERVEML_JWT_SECRET_SOURCE"], names["SERVEML_JWT_SECRET_PARAM"])

    ecr = boto3.client("ecr", region_name=REGION)
    with _exists_ok("RepositoryAlreadyExistsException"):
        ecr.create_repository(repositoryName=names["SERVEML_ECR_REPOSITORY"])

    iam = boto3.client("iam", region_name=REGION)
    model_role = names["SERVEML_MODEL_ROLE_ARN"].rpartition("/")[2]
    _create_role(iam, model_role, "lambda.amazonaws.com")
    codebuild_role = _create_role(iam, _CODEBUILD_ROLE, "codebuild.amazonaws.com")

    codebuild = boto3.client("codebuild", region_name=REGION)
    with _exists_ok("ResourceAlreadyExistsException"):
        codebuild.create_project(
            name=names["SERVEML_CODEBUILD_PROJECT"],
            # The pipeline points each build at its own context with sourceLocationOverride.
            source={"type": "S3", "location": f"{names['SERVEML_BUCKET']}/builds/context.zip"},
            artifacts={"type": "NO_ARTIFACTS"},
            environment={
                "type": "LINUX_CONTAINER",
                "image": "aws/codebuild/standard:7.0",
                "computeType": "BUILD_GENERAL1_SMALL",
                "privilegedMode": True,  # docker build needs it
            },
            serviceRole=codebuild_role,
        )
    return names


def _create_table(
    dynamodb: Any,
    name: str,
    key: str,
    *,
    index: tuple[str, str, str] | None = None,
    ttl_attribute: str | None = None,
) -> None:
    attributes = [{"AttributeName": key, "AttributeType": "S"}]
    extra: dict[str, Any] = {}
    if index is not None:
        index_name, partition, sort = index
        attributes += [
            {"AttributeName": partition, "AttributeType": "S"},
            {"AttributeName": sort, "AttributeType": "S"},
        ]
        extra["GlobalSecondaryIndexes"] = [
            {
                "IndexName": index_name,
                "KeySchema": [
                    {"AttributeName": partition, "KeyType": "HASH"},
                    {"AttributeName": sort, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ]
    with _exists_ok("ResourceInUseException"):
        dynamodb.create_table(
            TableName=name,
            AttributeDefinitions=attributes,
            KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
            **extra,
        )
        dynamodb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
        if ttl_attribute is not None:
            dynamodb.update_time_to_live(
                TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl_attribute}
            )


def _create_signing_secret(source: str, name: str) -> None:
    # 48 random bytes, well over HS256's 32-byte minimum that controlplane.tokens enforces.
    value = secrets.token_urlsafe(48)
    if source == "secretsmanager":
        with _exists_ok("ResourceExistsException"):
            boto3.client("secretsmanager", region_name=REGION).create_secret(Name=name, SecretString=value)
        return
    with _exists_ok("ParameterAlreadyExists"):
        boto3.client("ssm", region_name=REGION).put_parameter(
            Name=name, Value=value, Type="SecureString", Overwrite=False
        )


def _create_role(iam: Any, name: str, service: str) -> str:
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
    }
    try:
        return str(iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"])
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "EntityAlreadyExists":
            raise
        return str(iam.get_role(RoleName=name)["Role"]["Arn"])


@contextlib.contextmanager
def _exists_ok(*codes: str) -> Iterator[None]:
    try:
        yield
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in codes:
            raise


def create_demo_user(email: str, password: str) -> bool:
    """Add the user through the store, as the API will read it; False if the email has an account."""
    from controlplane import store  # noqa: PLC0415 - reads settings: only once the environment is set

    try:
        store.create_user(email, password)
    except store.UserExists:
        return False
    return True


# -- moto -----------------------------------------------------------------------------------


def aws_environment(endpoint_url: str) -> dict[str, str]:
    """What boto3 needs to talk to moto alone: its endpoint, dummy keys, one region."""
    return {
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }


def _point_boto3_at(endpoint_url: str) -> None:
    # A profile, a session token or a per-service endpoint from the user's shell would win over
    # these and send requests to real AWS; none may survive.
    for name in list(os.environ):
        if name.startswith("AWS_ENDPOINT_URL_") or name in (
            "AWS_PROFILE",
            "AWS_DEFAULT_PROFILE",
            "AWS_SESSION_TOKEN",
            "AWS_SECURITY_TOKEN",
        ):
            del os.environ[name]
    os.environ.update(aws_environment(endpoint_url))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def _check_free(port: int, option: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # Without SO_REUSEADDR a port in TIME_WAIT after a restart would look taken.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError as exc:
            raise LocalError(f"cannot listen on {HOST}:{port} ({option}): {exc.strerror or exc}") from None


def _answers_as_moto(url: str) -> bool:
    """True once moto's own API answers: a port that merely accepts could be someone else's."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"{url}/moto-api/data.json", timeout=2) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _moto_command(port: int) -> list[str]:
    script = Path(sys.executable).with_name("moto_server")
    base = [str(script)] if script.is_file() else [sys.executable, "-m", "moto.server"]
    return [*base, "-H", HOST, "-p", str(port)]


@dataclass
class MotoServer:
    """A ``moto_server`` child process, its port and its log file."""

    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(MOTO_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_moto(port: int | None = None) -> MotoServer:
    """Start ``moto_server`` on 127.0.0.1 and wait until it accepts connections."""
    if port:
        _check_free(port, "--moto-port")
    else:
        port = _free_port()
    fd, log_name = tempfile.mkstemp(prefix="serveml-moto-", suffix=".log")
    with os.fdopen(fd, "wb") as log_file:
        # Its own session: a Ctrl-C in the terminal reaches only this process, which then stops
        # moto itself, after the HTTP server, instead of both racing to exit.
        process = subprocess.Popen(
            _moto_command(port), stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file, start_new_session=True
        )
    server = MotoServer(port=port, process=process, log_path=Path(log_name))
    deadline = time.monotonic() + MOTO_START_TIMEOUT_S
    try:
        while True:
            if process.poll() is not None:
                raise LocalError(f"moto_server exited with status {process.returncode}:\n{server.log_tail()}")
            if _answers_as_moto(server.url):
                return server
            if time.monotonic() > deadline:
                raise LocalError(f"moto_server did not listen on {HOST}:{port} within {MOTO_START_TIMEOUT_S:g} s")
            time.sleep(0.1)
    except BaseException:
        # Ctrl-C included: moto is in a session of its own and would outlive this process.
        server.stop()
        raise


# -- HTTP -> HTTP API v2 event --------------------------------------------------------------


@dataclass
class LambdaContext:
    """The attributes a Lambda context gives a handler (Powertools' logger reads them)."""

    function_name: str = "serveml-api-local"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = "/aws/lambda/serveml-api-local"
    log_stream_name: str = "local"
    timeout_s: float = INTEGRATION_TIMEOUT_S
    _deadline: float = field(init=False)

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_s

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def http_api_event(
    method: str,
    target: str,
    headers: list[tuple[str, str]],
    body: bytes,
    *,
    source_ip: str = HOST,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The event API Gateway's HTTP API (payload format 2.0) would send Lambda for this request."""
    split = urllib.parse.urlsplit(target)
    path = split.path or "/"
    joined: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        key = name.lower()
        if key == "cookie":
            cookies += [part.strip() for part in value.split(";") if part.strip()]
            continue
        # HTTP API joins repeated headers with commas.
        joined[key] = f"{joined[key]},{value}" if key in joined else value
    query: dict[str, str] = {}
    for key, value in urllib.parse.parse_qsl(split.query, keep_blank_values=True):
        query[key] = f"{query[key]},{value}" if key in query else value
    moment = now or datetime.now(UTC)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": split.query,
        "headers": joined,
        "requestContext": {
            "accountId": ACCOUNT_ID,
            "apiId": "local",
            "domainName": joined.get("host", HOST),
            "domainPrefix": "local",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": joined.get("user-agent", ""),
            },
            "requestId": uuid.uuid4().hex,
            "routeKey": "$default",
            "stage": "$default",
            "time": moment.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(moment.timestamp() * 1000),
        },
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    if query:
        event["queryStringParameters"] = query
    if body:
        try:
            event["body"] = body.decode("utf-8")
        except UnicodeDecodeError:
            # As API Gateway does for a body that is not text.
            event["body"] = base64.b64encode(body).decode("ascii")
            event["isBase64Encoded"] = True
    return event


@dataclass(frozen=True)
class HTTPAnswer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def http_answer(result: Any) -> HTTPAnswer:
    """The HTTP response API Gateway makes of a handler's result (payload format 2.0)."""
    if not isinstance(result, dict) or "statusCode" not in result:
        # A result without statusCode is taken as the JSON body of a 200, as HTTP API does.
        text = result if isinstance(result, str) else json.dumps(result)
        return HTTPAnswer(200, [("Content-Type", "application/json")], text.encode())
    headers = [
        (str(name), str(value))
        for name, value in (result.get("headers") or {}).items()
        if str(name).lower() not in _SKIPPED_RESPONSE_HEADERS
    ]
    for name, values in (result.get("multiValueHeaders") or {}).items():
        if str(name).lower() not in _SKIPPED_RESPONSE_HEADERS:
            headers += [(str(name), str(value)) for value in values]
    headers += [("Set-Cookie", str(cookie)) for cookie in result.get("cookies") or []]
    body = result.get("body") or ""
    raw = base64.b64decode(body) if result.get("isBase64Encoded") else str(body).encode()
    if not any(name.lower() == "content-type" for name, _ in headers):
        headers.append(("Content-Type", "application/json"))
    return HTTPAnswer(int(result["statusCode"]), headers, raw)


Handler = Callable[[dict[str, Any], Any], Any]


def make_server(handler: Handler, port: int, *, log: Callable[[str], None] | None = None) -> ThreadingHTTPServer:
    """An HTTP server on 127.0.0.1:``port`` that answers every request through ``handler``."""
    # One Lambda execution environment runs one invocation at a time; so does this one. It also
    # keeps boto3 resources (which are not thread-safe) and the handler's caches single-threaded.
    invocation = threading.Lock()
    write_log = log or (lambda line: print(line, file=sys.stderr, flush=True))

    class Bridge(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "serveml-controlplane-local"

        def _answer(self) -> None:
            started = time.monotonic()
            length_text = self.headers.get("Content-Length", "0") or "0"
            try:
                length = int(length_text)
            except ValueError:
                length = -1
            if length < 0 or length > MAX_BODY_BYTES:
                # As API Gateway answers: its own {"message"}, before any Lambda runs.
                answer = HTTPAnswer(
                    413, [("Content-Type", "application/json")], b'{"message":"Request Entity Too Large"}'
                )
                self.close_connection = True
            else:
                body = self.rfile.read(length) if length else b""
                event = http_api_event(
                    self.command, self.path, list(self.headers.items()), body, source_ip=self.client_address[0]
                )
                answer = self._invoke(event)
            self.send_response(answer.status)
            for name, value in answer.headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(answer.body)
            elapsed_ms = (time.monotonic() - started) * 1000
            write_log(f'{self.client_address[0]} "{self.command} {self.path}" {answer.status} {elapsed_ms:.0f} ms')

        def _invoke(self, event: dict[str, Any]) -> HTTPAnswer:
            with invocation:
                try:
                    return http_answer(handler(event, LambdaContext()))
                except Exception:
                    # What API Gateway answers when the function fails; the traceback is its log.
                    traceback.print_exc()
                    return HTTPAnswer(
                        500, [("Content-Type", "application/json")], b'{"message":"Internal Server Error"}'
                    )

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _answer

        def log_message(self, format: str, *args: Any) -> None:
            # One line per request is written by _answer, with the time taken.
            pass

    server = ThreadingHTTPServer((HOST, port), Bridge)
    server.daemon_threads = True
    return server


# -- run ------------------------------------------------------------------------------------


def run(
    *,
    port: int = 8000,
    moto_port: int | None = None,
    email: str = "demo@example.com",
    password: str | None = None,
    echo: Callable[[str], None] | None = None,
) -> int:
    """Serve the control plane on 127.0.0.1:``port`` until Ctrl-C (or SIGTERM); the exit status."""
    say = echo or (lambda line: print(line, flush=True))
    password = password or secrets.token_urlsafe(12)
    # The API's handler exists only once boto3 points at moto; the server is made (and its port
    # bound) before that, so that a port in use stops here, before moto is started for nothing.
    api: list[Handler] = []

    def dispatch(event: dict[str, Any], context: Any) -> Any:
        return api[0](event, context)

    try:
        server = make_server(dispatch, port)
    except OSError as exc:
        raise LocalError(f"cannot listen on {HOST}:{port}: {exc.strerror or exc}") from None

    stopped_by: list[str] = []
    moto: MotoServer | None = None
    previous = _stop_on_signals(stopped_by)
    with server:
        try:
            moto = start_moto(moto_port)
            _point_boto3_at(moto.url)
            os.environ.update(bootstrap(os.environ))
            from controlplane import settings  # noqa: PLC0415 - reads the environment set just above

            settings.current.cache_clear()
            created = create_demo_user(email, password)
            try:
                from controlplane.api import handler  # noqa: PLC0415 - makes its clients for moto's endpoint
            except ImportError as exc:
                raise LocalError(f"controlplane.api cannot be imported: {exc}") from None
            api.append(handler)
            threading.Thread(target=_watch, args=(moto, server, stopped_by), daemon=True).start()
            _introduce(say, f"http://{HOST}:{port}", moto, email, password if created else None)
            server.serve_forever(poll_interval=0.2)
        except KeyboardInterrupt:
            pass
        finally:
            _restore_signals(previous)
            if moto is not None:
                moto.stop()
    if moto is None:
        return 130  # stopped before moto was up
    if stopped_by and stopped_by[0] == "moto":
        print(f"serveml: moto_server exited unexpectedly:\n{moto.log_tail()}", file=sys.stderr)
        return 1
    with contextlib.suppress(OSError):
        moto.log_path.unlink()
    say("serveml: control plane stopped")
    return 0


def _introduce(say: Callable[[str], None], url: str, moto: MotoServer, email: str, password: str | None) -> None:
    shown = password if password is not None else "(unchanged: the user existed)"
    say(f"serveml: control plane at {url} (AWS: moto at {moto.url}, log {moto.log_path})")
    say(f"serveml: demo user {email} / {shown}")
    say("serveml: the build pipeline is not wired here: deployments stay 'uploading' after their upload")
    say("serveml: try, in another shell:")
    say(f"  export SERVEML_API_URL={url}")
    secret, user = shlex.quote(password or "PASSWORD"), shlex.quote(email)
    say(f"  printf '%s\\n' {secret} | serveml login --email {user} --password-stdin")
    say("  serveml deploy model.joblib --no-wait")
    say("  serveml status dep-...   serveml logs dep-... --type build   serveml predict dep-... --input request.json")
    say("serveml: Ctrl-C stops the API and moto")


def _watch(moto: MotoServer, server: ThreadingHTTPServer, stopped_by: list[str]) -> None:
    """Stop serving when moto dies: every request would fail otherwise."""
    while moto.process.poll() is None:
        time.sleep(0.5)
    if not stopped_by:
        stopped_by.append("moto")
        server.shutdown()


SignalHandler = Callable[[int, FrameType | None], Any] | int | None


def _stop_on_signals(stopped_by: list[str]) -> dict[int, SignalHandler]:
    def stop(signum: int, _frame: FrameType | None) -> None:
        stopped_by.append(signal.Signals(signum).name)
        # Raised in the main thread, out of serve_forever, into run's finally (which stops moto).
        raise KeyboardInterrupt

    previous: dict[int, SignalHandler] = {}
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        previous[sig] = signal.signal(sig, stop)
    return previous


def _restore_signals(previous: Mapping[int, SignalHandler]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)
