"""Attacks on the control plane, sent as raw HTTP through the local bridge (``controlplane.local``,
which turns each request into the API Gateway v2 event Lambda receives) to the real handler, with
moto behind it: forged and replayed tokens, other users' deployments, hostile deployment ids,
oversized bodies. Each gets the guide's status and envelope, nothing of anyone else's data, and a
hostile id never reaches DynamoDB, S3, Lambda or CloudWatch Logs."""

from __future__ import annotations

import base64
import calendar
import hmac
import http.client
import http.server
import json
import re
import socket
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import boto3
import pytest

from controlplane import api, aws, local, store
from tests.controlplane.conftest import (
    BUCKET,
    DEPLOYMENTS_TABLE,
    RATE_TABLE,
    Account,
    Resources,
    call,
    put,
    unauthorized_envelope,
)
from tests.e2e.conftest import free_port

DEPLOYMENTS = "/api/v1/deployments"
NOT_FOUND = {"error": {"code": "NOT_FOUND", "message": "Deployment not found"}}
#: What a response must never carry: a traceback, or the words of an exception from inside.
INTERNALS = ("Traceback", 'File "', "botocore", "ClientError", "PyJWT", "jwt.", "Signature verification", "(iat)")


# -- the bridge and raw HTTP ------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key.lower() == name.lower()), None)

    def text(self) -> str:
        """Headers and body, as a client sees them: where leaks are looked for."""
        head = "\n".join(f"{key}: {value}" for key, value in self.headers)
        return f"{head}\n\n{self.body.decode('utf-8', errors='replace')}"


@pytest.fixture(scope="module")
def bridge(resources: Resources) -> Iterator[int]:
    """``controlplane.local``'s HTTP server in front of ``controlplane.api.handler``; its port."""
    port = free_port()
    server = local.make_server(api.handler, port, log=lambda _line: None)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def send(
    port: int,
    method: str,
    target: str | bytes,
    *,
    token: str | None = None,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    declared_length: int | None = None,
) -> Answer:
    """One request, written byte for byte on a socket (no client library cleans the target up)."""
    raw_target = target.encode("utf-8") if isinstance(target, str) else target
    lines = [b"%s %s HTTP/1.1" % (method.encode(), raw_target), b"Host: 127.0.0.1", b"Connection: close"]
    sent = dict(headers or {})
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    if body or declared_length is not None:
        sent.setdefault("Content-Type", "application/json")
    lines += [f"{name}: {value}".encode() for name, value in sent.items()]
    lines.append(b"Content-Length: %d" % (len(body) if declared_length is None else declared_length))
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        response = http.client.HTTPResponse(sock, method=method)
        response.begin()
        data = response.read()
        return Answer(response.status, response.getheaders(), data)


def assert_clean(answer: Answer, *private: str) -> None:
    """No private value and nothing from inside the server in the headers or the body."""
    text = answer.text()
    for value in private:
        assert value not in text, f"{value!r} leaked: {text}"
    for marker in INTERNALS:
        assert marker not in text, f"internal detail {marker!r} in: {text}"


# -- what reaches AWS -------------------------------------------------------------------------


@dataclass(frozen=True)
class AwsCall:
    service: str
    operation: str
    params: str


@pytest.fixture
def aws_calls(resources: Resources) -> Iterator[list[AwsCall]]:
    """Every AWS API call the control plane's own clients make while the test runs."""
    seen: list[AwsCall] = []
    clients = [aws.client(name) for name in ("dynamodb", "s3", "lambda", "logs", "codebuild", "ssm")]

    def record(model: Any, params: Any, **_: Any) -> None:
        seen.append(AwsCall(model.service_model.service_name, model.name, json.dumps(params, default=str)))

    for client in clients:
        client.meta.events.register("before-call", record)
    try:
        yield seen
    finally:
        for client in clients:
            client.meta.events.unregister("before-call", record)


def only_rate_counting(calls: list[AwsCall]) -> bool:
    """True when the requests touched nothing but the rate table (and the cached secret)."""
    return all(
        (c.service == "dynamodb" and c.operation == "UpdateItem" and RATE_TABLE in c.params)
        or (c.service == "ssm" and c.operation == "GetParameter")
        for c in calls
    )


# -- tokens made by an attacker ---------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict[str, Any], claims: dict[str, Any], key: bytes | None, digest: str = "sha256") -> str:
    """A JWT assembled by hand: any header, any claims, an HMAC with any key (None: unsigned)."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = b"" if key is None else hmac.new(key, signing_input.encode(), digest).digest()
    return f"{signing_input}.{_b64(signature)}"


def claims_of(account: Account, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"sub": account.user_id, "email": account.email, "iat": now, "exp": now + 600, "jti": uuid.uuid4().hex}
    claims.update(overrides)
    return claims


HS256 = {"alg": "HS256", "typ": "JWT"}
ATTACKER_KEY = b"attacker-chosen-key-that-is-long-enough-0123456789"
#: An RSA public key in PEM (the attacker's own): the classic confusion uses a public key as an HMAC secret.
PUBLIC_PEM = (
    b"-----BEGIN PUBLIC KEY-----\n"
    b"MFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBAMtVbWPAVjy5V6FmhV0Q2w3qRWn2ycwb\n"
    b"i3vYkDrmFzJ2sm+8R4Wy7Rz6H8vIW3fvZCR6FvP6DCYj2bYd0Cfb4XMCAwEAAQ==\n"
    b"-----END PUBLIC KEY-----\n"
)


def _swap_payload(token: str, claims: dict[str, Any]) -> str:
    header, _, signature = token.split(".")
    return f"{header}.{_b64(json.dumps(claims).encode())}.{signature}"


#: Each makes, from the server's secret (which only the "server's key" cases use, to show that even
#: a correct HMAC does not help a token the rules refuse) and the victim, a token claiming to be them.
Forgery = Callable[[bytes, Account, str], str]
FORGERIES: dict[str, Forgery] = {
    "alg none": lambda s, v, u: forge({"alg": "none", "typ": "JWT"}, claims_of(v), None),
    "alg None": lambda s, v, u: forge({"alg": "None", "typ": "JWT"}, claims_of(v), None),
    "alg NONE": lambda s, v, u: forge({"alg": "NONE", "typ": "JWT"}, claims_of(v), None),
    "alg nOnE": lambda s, v, u: forge({"alg": "nOnE", "typ": "JWT"}, claims_of(v), None),
    "alg none, signed with the server's key": lambda s, v, u: forge({"alg": "none"}, claims_of(v), s),
    "no alg, signed with the server's key": lambda s, v, u: forge({"typ": "JWT"}, claims_of(v), s),
    "signature stripped": lambda s, v, u: forge(HS256, claims_of(v), s).rpartition(".")[0] + ".",
    "HS256 with an empty key": lambda s, v, u: forge(HS256, claims_of(v), b""),
    "HS256 with the key 'secret'": lambda s, v, u: forge(HS256, claims_of(v), b"secret"),
    "wrong key": lambda s, v, u: forge(HS256, claims_of(v), ATTACKER_KEY),
    "expired a second ago": lambda s, v, u: forge(
        HS256, claims_of(v, iat=int(time.time()) - 601, exp=int(time.time()) - 1), s
    ),
    "expired a day ago": lambda s, v, u: forge(
        HS256, claims_of(v, iat=int(time.time()) - 90000, exp=int(time.time()) - 86400), s
    ),
    "nbf in the future": lambda s, v, u: forge(HS256, claims_of(v, nbf=int(time.time()) + 300), s),
    "iat in the future": lambda s, v, u: forge(
        HS256, claims_of(v, iat=int(time.time()) + 300, exp=int(time.time()) + 900), s
    ),
    "expired, exp pushed forward, signature kept": lambda s, v, u: _swap_payload(
        forge(HS256, claims_of(v, iat=int(time.time()) - 7200, exp=int(time.time()) - 3600), s),
        claims_of(v, iat=int(time.time()) - 7200, exp=int(time.time()) + 3600),
    ),
    "the attacker's own token, sub changed to the victim": lambda s, v, u: _swap_payload(u, claims_of(v)),
    "kid path traversal to /dev/null, empty key": lambda s, v, u: forge(
        {**HS256, "kid": "../../../../../../dev/null"}, claims_of(v), b""
    ),
    "kid SQL injection": lambda s, v, u: forge(
        {**HS256, "kid": "x' UNION SELECT 'attacker-chosen-key"}, claims_of(v), b"attacker-chosen-key"
    ),
    "jwk embedded in the header": lambda s, v, u: forge(
        {**HS256, "jwk": {"kty": "oct", "k": _b64(ATTACKER_KEY)}}, claims_of(v), ATTACKER_KEY
    ),
    "alg RS256, HMAC with the server's key": lambda s, v, u: forge({"alg": "RS256"}, claims_of(v), s),
    "alg HS256 with a public key as the HMAC secret": lambda s, v, u: forge(HS256, claims_of(v), PUBLIC_PEM),
    "alg HS512 with the server's key": lambda s, v, u: forge({"alg": "HS512"}, claims_of(v), s, "sha512"),
    "alg HS384 with the server's key": lambda s, v, u: forge({"alg": "HS384"}, claims_of(v), s, "sha384"),
    "four segments": lambda s, v, u: forge(HS256, claims_of(v), s) + ".AAAA",
}


@pytest.fixture(scope="module")
def bobs_deployment(resources: Resources, bob_token: str) -> dict[str, str]:
    """A deployment of Bob's with a name, a model file in S3: the data a forged token is after."""
    created = call(
        "POST",
        DEPLOYMENTS,
        token=bob_token,
        json_body={"model_filename": "bob-private-model.joblib", "name": "bobs-secret-project"},
    )
    assert created.status == 201, created.body
    assert put(created.body["upload"]["model"]["url"], b"bob's model") == 200
    deployment_id = created.body["id"]
    return {
        "id": deployment_id,
        "name": "bobs-secret-project",
        "filename": "bob-private-model.joblib",
        "key": store.model_key(resources.bob.user_id, deployment_id, "bob-private-model.joblib"),
        "email": resources.bob.email,
        "user_id": resources.bob.user_id,
    }


def test_the_victims_own_token_does_read_the_deployment(
    bridge: int, bob_token: str, bobs_deployment: dict[str, str]
) -> None:
    # The control: with a real token the route shows Bob's data, so a 401 below is the token's doing.
    answer = send(bridge, "GET", f"{DEPLOYMENTS}/{bobs_deployment['id']}", token=bob_token)
    assert answer.status == 200
    assert answer.json["name"] == bobs_deployment["name"]


class _Listener(http.server.BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        _Listener.hits.append(self.path)
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def attacker_url() -> Iterator[str]:
    """A server of the attacker's, for jku/x5u headers: nobody on the server side may call it."""
    server = http.server.HTTPServer(("127.0.0.1", 0), _Listener)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("kind", list(FORGERIES))
def test_forged_tokens_get_the_guides_401_and_nothing_of_the_victims(
    bridge: int, resources: Resources, alice_token: str, bobs_deployment: dict[str, str], kind: str
) -> None:
    # GIVEN Alice (or anyone) holding a token forged in one way to say it is Bob's
    token = FORGERIES[kind](resources.secret.encode(), resources.bob, alice_token)
    # WHEN it is sent for Bob's deployment, and for the list of "his" deployments
    for target in (f"{DEPLOYMENTS}/{bobs_deployment['id']}", DEPLOYMENTS):
        answer = send(bridge, "GET", target, token=token)
        # THEN the answer is exactly the guide's 401: no rate headers, none of Bob's data, no internals
        assert answer.status == 401, (kind, target, answer.body)
        assert answer.json == unauthorized_envelope()
        assert answer.header("X-RateLimit-Remaining") is None
        assert_clean(answer, *(v for k, v in bobs_deployment.items() if k != "id"))


@pytest.mark.parametrize("header", ["jku", "x5u"])
def test_key_urls_in_the_header_are_never_fetched(
    bridge: int, resources: Resources, attacker_url: str, header: str
) -> None:
    # GIVEN a token signed with the attacker's key that names the attacker's key set
    token = forge({**HS256, header: f"{attacker_url}/keys.json"}, claims_of(resources.bob), ATTACKER_KEY)
    # WHEN it is used
    answer = send(bridge, "GET", DEPLOYMENTS, token=token)
    # THEN it is refused, and the server never went to fetch the key
    assert (answer.status, answer.json) == (401, unauthorized_envelope())
    assert _Listener.hits == []


# -- another user's deployment ----------------------------------------------------------------

#: Every route under a deployment id: method, path template, body.
DEPLOYMENT_ROUTES = [
    ("GET", f"{DEPLOYMENTS}/{{id}}", b""),
    ("DELETE", f"{DEPLOYMENTS}/{{id}}", b""),
    ("GET", f"{DEPLOYMENTS}/{{id}}/logs", b""),
    ("GET", f"{DEPLOYMENTS}/{{id}}/logs?type=build&tail=10", b""),
    ("GET", f"{DEPLOYMENTS}/{{id}}/logs?type=runtime", b""),
    ("GET", f"{DEPLOYMENTS}/{{id}}/health", b""),
    ("POST", "/api/v1/predict/{id}", b'{"data": [[5.1, 3.5, 1.4, 0.2]]}'),
    ("POST", "/api/v1/predict/{id}", b"not json"),
    ("GET", "/api/v1/predict/{id}/health", b""),
]


@pytest.mark.parametrize("status", ["uploading", "ready"])
def test_another_users_deployment_is_404_on_every_route_and_shows_nothing(
    bridge: int, resources: Resources, alice_token: str, bob_token: str, status: str
) -> None:
    # GIVEN a deployment of Alice's, with a name, a model file in S3, and (when ready) a function
    created = call(
        "POST",
        DEPLOYMENTS,
        token=alice_token,
        json_body={"model_filename": "alice-private-model.joblib", "name": "alices-secret-project"},
    )
    deployment_id = created.body["id"]
    assert put(created.body["upload"]["model"]["url"], b"alice's model") == 200
    key = store.model_key(resources.alice.user_id, deployment_id, "alice-private-model.joblib")
    function_name = f"serveml-model-{deployment_id}"
    if status == "ready":
        assert store.update_status(deployment_id, "ready", function_name=function_name, build_id="build:alice-1")
    private = [
        deployment_id,
        "alices-secret-project",
        "alice-private-model",
        key,
        resources.alice.email,
        resources.alice.user_id,
        "build:alice-1",
    ]
    # WHEN Bob, with his own valid token, tries every route on it
    for method, template, body in DEPLOYMENT_ROUTES:
        answer = send(bridge, method, template.format(id=deployment_id), token=bob_token, body=body)
        # THEN each is the same 404 as for an id that never existed (never 403, 409 or 502)
        assert answer.status == 404, (method, template, answer.body)
        assert answer.json == NOT_FOUND
        # AND nothing of Alice's is in the answer: not even the id Bob asked about
        assert_clean(answer, *private)
    # AND Bob's DELETE removed nothing: Alice still has her record and her upload
    assert call("GET", f"{DEPLOYMENTS}/{deployment_id}", token=alice_token).status == 200
    assert boto3.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"alice's model"


# -- hostile deployment ids -------------------------------------------------------------------

REAL = "{real}"  # stands for a real deployment id of the caller's, to graft an attack onto
HOSTILE_IDS = [
    "../../etc/passwd",
    "..%2f..%2fusers",
    "%2e%2e%2f%2e%2e%2fusers",
    "%2E%2E%2F",
    "%252e%252e%252f%252e%252e%252fusers",
    "..%c0%af..%c0%afusers",
    f"{REAL}/../{REAL}",
    f"{REAL}%2f..%2f{REAL}",
    f"{REAL}%00",
    f"{REAL}%00.json",
    "dep-" + "a" * 5000,
    "dep-" + "0" * 12 + "0",
    "DEP-0123456789AB",
    "dep-\uff10\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18\uff19ab",  # fullwidth digits
    "dep-%EF%BC%90%EF%BC%91%EF%BC%92%EF%BC%93%EF%BC%94%EF%BC%95%EF%BC%96%EF%BC%97%EF%BC%98%EF%BC%99ab",
    "dep-0123456789\u0430b",  # Cyrillic a
    f"{REAL}%0a",
    f"{REAL}%0d%0aX-Injected:%20yes",
    f"{REAL}%20",
    f"{REAL}'%20OR%20'1'='1",
    f'{REAL}"%20OR%20attribute_exists(id)',
    "%23owner%20=%20:owner",
    "attribute_exists(id)",
    "${jndi:ldap://127.0.0.1/x}",
    "a/../../b",
    "uploads%2fusr-x%2fdep-0123456789ab%2fmodel",
    "*",
    "%2a",
]


def _hostile_targets(raw_id: str, real_id: str) -> list[tuple[str, str, bytes]]:
    hostile = raw_id.replace(REAL, real_id)
    return [
        ("GET", f"{DEPLOYMENTS}/{hostile}", b""),
        ("DELETE", f"{DEPLOYMENTS}/{hostile}", b""),
        ("GET", f"{DEPLOYMENTS}/{hostile}/logs", b""),
        ("POST", f"/api/v1/predict/{hostile}", b'{"data": [[1, 2, 3, 4]]}'),
    ]


@pytest.fixture(scope="module")
def alices_deployment(alice_token: str) -> str:
    created = call("POST", DEPLOYMENTS, token=alice_token, json_body={"model_filename": "model.joblib"})
    assert created.status == 201
    deployment_id: str = created.body["id"]
    assert put(created.body["upload"]["model"]["url"], b"m") == 200
    return deployment_id


@pytest.mark.parametrize("raw_id", HOSTILE_IDS)
def test_hostile_ids_are_404_and_never_reach_aws(
    bridge: int, alice_token: str, alices_deployment: str, aws_calls: list[AwsCall], raw_id: str
) -> None:
    for method, target, body in _hostile_targets(raw_id, alices_deployment):
        aws_calls.clear()
        # WHEN Alice sends an id that is not dep-<12 hex>, alone or grafted onto her own real id
        answer = send(bridge, method, target, token=alice_token, body=body)
        # THEN it is a 404 envelope (never 2xx, 400 or 500), with nothing from inside
        assert answer.status == 404, (method, target, answer.status, answer.body)
        assert answer.json["error"]["code"] == "NOT_FOUND"
        assert_clean(answer)
        assert answer.header("X-Injected") is None
        # AND the only AWS call the request made was counting it: no table, bucket, function or log saw the id
        assert any(c.operation == "UpdateItem" for c in aws_calls), "the recorder saw nothing"
        assert only_rate_counting(aws_calls), aws_calls
    # AND her real deployment was not touched by the DELETEs
    assert call("GET", f"{DEPLOYMENTS}/{alices_deployment}", token=alice_token).status == 200


@pytest.mark.parametrize(
    "raw_target",
    [
        b"/api/v1/deployments/dep-0123456789ab\x00",
        b"/api/v1/deployments/dep-0123456789ab\x00/../../users",
        "/api/v1/deployments/dep-0123456789\u0430b".encode(),
        b"/api/v1/deployments/dep-0123456789ab\xff",
        b"/api/v1/deployments/\x1b[31mdep-0123456789ab",
    ],
)
def test_raw_bytes_in_the_path_are_404(
    bridge: int, alice_token: str, aws_calls: list[AwsCall], raw_target: bytes
) -> None:
    # WHEN bytes no client library would send (a NUL, invalid UTF-8, an escape) are in the path
    answer = send(bridge, "GET", raw_target, token=alice_token)
    # THEN the id is not found, and nothing reached the store
    assert answer.status == 404, answer.body
    assert answer.json["error"]["code"] == "NOT_FOUND"
    assert only_rate_counting(aws_calls), aws_calls


def test_the_stores_hold_no_hostile_key(
    bridge: int, alice_token: str, alices_deployment: str, resources: Resources
) -> None:
    # GIVEN every hostile id sent on every route (the test above, again here so the order of tests does not matter)
    for raw_id in HOSTILE_IDS:
        for method, target, body in _hostile_targets(raw_id, alices_deployment):
            send(bridge, method, target, token=alice_token, body=body)
    # THEN the deployments table holds only ids of the one shape, and the bucket only keys under
    # uploads/<user>/<dep-id>/ with no traversal in them
    items = boto3.client("dynamodb").scan(TableName=DEPLOYMENTS_TABLE, ProjectionExpression="id")["Items"]
    assert items
    assert all(store.is_deployment_id(item["id"]["S"]) for item in items), items
    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=BUCKET).get("Contents", [])]
    upload = re.compile(
        r"uploads/usr-[0-9a-f]{32}/dep-[0-9a-f]{12}/(model/[A-Za-z0-9][A-Za-z0-9._-]*|requirements\.txt)"
    )
    assert [k for k in keys if k.startswith("uploads/") and not upload.fullmatch(k)] == []
    assert not any(".." in k.split("/") or "\x00" in k for k in keys)


def test_injection_in_query_parameters_is_400(bridge: int, alice_token: str, alices_deployment: str) -> None:
    for query in (
        "type=build%0d%0aX-Injected:%20yes",
        "type=build'%20OR%20'1'='1",
        "tail=1%0d%0aX-Injected:yes",
        "tail=-1",
    ):
        answer = send(bridge, "GET", f"{DEPLOYMENTS}/{alices_deployment}/logs?{query}", token=alice_token)
        assert answer.status == 400, (query, answer.body)
        assert answer.json["error"]["code"] == "INVALID_INPUT"
        assert answer.header("X-Injected") is None
        assert_clean(answer)


# -- oversized bodies -------------------------------------------------------------------------

BODY_ROUTES = [
    ("POST", "/api/v1/auth/login"),
    ("POST", DEPLOYMENTS),
    ("POST", "/api/v1/predict/dep-0123456789ab"),
    ("GET", DEPLOYMENTS),  # a body where none is expected is still measured first
]


@pytest.fixture
def small_body_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 1 KiB body limit."""
    monkeypatch.setenv("SERVEML_MAX_BODY_BYTES", "1024")


@pytest.mark.usefixtures("small_body_limit")
@pytest.mark.parametrize("route", BODY_ROUTES, ids=[f"{m} {p}" for m, p in BODY_ROUTES])
@pytest.mark.parametrize("credentials", ["valid token", "bad token", "no token"])
def test_an_oversized_body_is_413_before_the_token_is_looked_at(
    bridge: int, alice_token: str, aws_calls: list[AwsCall], route: tuple[str, str], credentials: str
) -> None:
    # GIVEN a 1 KiB body limit
    method, path = route
    token = {"valid token": alice_token, "bad token": "not.a.token", "no token": None}[credentials]
    # WHEN a body of 1 KiB + 1 arrives (not even JSON), whatever the credentials
    answer = send(bridge, method, path, token=token, body=b"x" * 1025)
    # THEN size is checked first: the guide's 413 for all, so the size of a body never depends on who sent it
    assert answer.status == 413, answer.body
    assert answer.json == {
        "error": {"code": "PAYLOAD_TOO_LARGE", "message": "Request body exceeds 1024 bytes", "limit": 1024}
    }
    # AND no work was done for it: no token checked, no quota spent, no user looked up, nothing parsed
    assert answer.header("X-RateLimit-Remaining") is None
    assert [c for c in aws_calls if c.service != "ssm"] == []


def test_a_body_at_the_limit_is_let_through(monkeypatch: pytest.MonkeyPatch, bridge: int, alice_token: str) -> None:
    monkeypatch.setenv("SERVEML_MAX_BODY_BYTES", "1024")
    body = json.dumps({"model_filename": "model.joblib", "name": "n" * 10}).encode()
    body += b" " * (1024 - len(body))
    answer = send(bridge, "POST", DEPLOYMENTS, token=alice_token, body=body)
    assert answer.status == 201, answer.body


def test_a_multi_byte_body_is_measured_in_bytes(monkeypatch: pytest.MonkeyPatch, bridge: int, alice_token: str) -> None:
    # GIVEN a body of 600 characters that are 1800 bytes of UTF-8, under a 1 KiB limit
    monkeypatch.setenv("SERVEML_MAX_BODY_BYTES", "1024")
    body = json.dumps({"model_filename": "model.joblib", "name": "€" * 600}, ensure_ascii=False).encode()
    answer = send(bridge, "POST", DEPLOYMENTS, token=alice_token, body=body)
    assert answer.status == 413, answer.body


def test_a_body_over_the_gateways_limit_is_refused_unread(bridge: int) -> None:
    # GIVEN a request that declares 50 MiB and sends none of it
    started = time.monotonic()
    answer = send(bridge, "POST", DEPLOYMENTS, token="x", body=b"", declared_length=50 * 1024 * 1024)
    # THEN the front door (API Gateway's 10 MB, as the local bridge plays it) answers 413 at once,
    # without waiting for the body nor calling the function
    assert answer.status == 413
    assert answer.json == {"message": "Request Entity Too Large"}
    assert time.monotonic() - started < 5


def test_a_huge_base64_body_is_refused_without_decoding(monkeypatch: pytest.MonkeyPatch, alice_token: str) -> None:
    # A binary body arrives base64-encoded; its size is judged from the encoded length first.
    monkeypatch.setenv("SERVEML_MAX_BODY_BYTES", "1024")
    from controlplane.api import handler
    from runtime.context import LocalContext
    from tests.controlplane.conftest import http_event

    event = http_event("POST", DEPLOYMENTS, headers={"Authorization": "Bearer nope"}, body="!" * 10_000)
    event["isBase64Encoded"] = True  # and not even valid base64: 413 before any decoding
    response = handler(event, LocalContext(timeout_s=30))
    assert response["statusCode"] == 413


# -- presigned upload URLs expire -------------------------------------------------------------


class ExpiredUrl(Exception):
    """S3's 403 AccessDenied "Request has expired"."""


class ForgedUrl(Exception):
    """S3's 403 SignatureDoesNotMatch."""


def s3_checks_presigned(url: str, method: str, now: float) -> None:
    """What S3 does to a SigV4 query-string request before it looks at the bucket.

    moto's S3 accepts every presigned URL, signed or not, expired or not (moto 5.2 has no check of
    X-Amz-Expires, and its request authentication reads only the Authorization header). So this is
    S3's documented check for presigned requests, run on the URL the API handed out: the signature
    is recomputed with botocore's own SigV4 (canonical request, string to sign, signing key) from
    the credentials that signed it, and the request is refused when X-Amz-Date + X-Amz-Expires is
    past, or X-Amz-Expires is over SigV4's 7 days.
    """
    from botocore.auth import S3SigV4QueryAuth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    split = urllib.parse.urlsplit(url)
    pairs = urllib.parse.parse_qsl(split.query, keep_blank_values=True)
    query = dict(pairs)
    unsigned = urllib.parse.urlunsplit(
        split._replace(query=urllib.parse.urlencode([(k, v) for k, v in pairs if k != "X-Amz-Signature"]))
    )
    access_key, day, region, service, _ = query["X-Amz-Credential"].split("/")
    credentials = boto3.session.Session().get_credentials()
    assert credentials is not None
    assert credentials.access_key == access_key
    signer = S3SigV4QueryAuth(
        Credentials(credentials.access_key, credentials.secret_key), service, region, int(query["X-Amz-Expires"])
    )
    request = AWSRequest(method=method, url=unsigned)
    request.context["timestamp"] = query["X-Amz-Date"]
    expected = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
    if not hmac.compare_digest(expected, query["X-Amz-Signature"]) or not query["X-Amz-Date"].startswith(day):
        raise ForgedUrl(url)
    signed_at = calendar.timegm(time.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ"))
    expires = int(query["X-Amz-Expires"])
    if not 1 <= expires <= 604800 or now > signed_at + expires:
        raise ExpiredUrl(url)


def test_upload_urls_stop_working_after_their_lifetime(monkeypatch: pytest.MonkeyPatch, alice_token: str) -> None:
    # GIVEN upload URLs that live 1 s
    monkeypatch.setenv("SERVEML_UPLOAD_URL_TTL_S", "1")
    created = call("POST", DEPLOYMENTS, token=alice_token, json_body={"model_filename": "model.joblib"})
    url = created.body["upload"]["model"]["url"]
    assert created.body["upload"]["model"]["expires_in"] == 1
    # THEN S3's check accepts it at once, signed by the API's credentials for a PUT only
    s3_checks_presigned(url, "PUT", time.time())
    with pytest.raises(ForgedUrl):
        s3_checks_presigned(url, "GET", time.time())
    # AND the client cannot stretch its life: a longer X-Amz-Expires breaks the signature
    with pytest.raises(ForgedUrl):
        s3_checks_presigned(url.replace("X-Amz-Expires=1&", "X-Amz-Expires=604800&"), "PUT", time.time())
    # WHEN its lifetime has passed (waited out, not simulated)
    time.sleep(2.1)
    # THEN it is refused as expired, while a fresh one works
    with pytest.raises(ExpiredUrl):
        s3_checks_presigned(url, "PUT", time.time())
    fresh = call("POST", DEPLOYMENTS, token=alice_token, json_body={"model_filename": "model.joblib"})
    s3_checks_presigned(fresh.body["upload"]["model"]["url"], "PUT", time.time())
    assert put(fresh.body["upload"]["model"]["url"], b"m") == 200


@pytest.mark.parametrize("ttl", ["0", "-5", "604801", "ten"])
def test_an_upload_url_lifetime_s3_would_refuse_is_a_settings_error(monkeypatch: pytest.MonkeyPatch, ttl: str) -> None:
    # SigV4 presigned URLs live at most 7 days: S3 refuses a longer X-Amz-Expires outright.
    from controlplane import settings

    monkeypatch.setenv("SERVEML_UPLOAD_URL_TTL_S", ttl)
    with pytest.raises(settings.SettingsError, match="SERVEML_UPLOAD_URL_TTL_S"):
        settings.from_environment()
