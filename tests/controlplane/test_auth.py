"""Login and bearer tokens: one valid way in, and exactly one 401 for every wrong one."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable

import jwt
import pytest

from tests.controlplane.conftest import Resources, call, login, unauthorized_envelope

DEPLOYMENTS = "/api/v1/deployments"


def test_login_issues_a_bearer_token_that_authorises(resources: Resources) -> None:
    # GIVEN a registered user
    # WHEN they log in
    reply = call(
        "POST", "/api/v1/auth/login", json_body={"email": "Alice@Example.com", "password": resources.alice.password}
    )
    # THEN they get a Bearer token for the configured lifetime, carrying their identity
    assert reply.status == 200, reply.body
    assert reply.body["token_type"] == "Bearer"
    assert reply.body["expires_in"] == 3600
    claims = jwt.decode(reply.body["token"], resources.secret, algorithms=["HS256"])
    assert claims["sub"] == resources.alice.user_id
    assert claims["email"] == resources.alice.email
    assert claims["exp"] - claims["iat"] == 3600
    assert claims["jti"]
    # AND the token opens the API
    listed = call("GET", DEPLOYMENTS, token=reply.body["token"])
    assert listed.status == 200, listed.body


def test_every_login_gets_its_own_token_id(resources: Resources) -> None:
    first, second = login(resources.alice), login(resources.alice)
    assert (
        jwt.decode(first, resources.secret, algorithms=["HS256"])["jti"]
        != jwt.decode(second, resources.secret, algorithms=["HS256"])["jti"]
    )


def test_health_needs_no_token(resources: Resources) -> None:
    reply = call("GET", "/health")
    assert (reply.status, reply.body) == (200, {"status": "ok"})


@pytest.mark.parametrize(
    ("email", "password"),
    [("alice@example.com", "wrong password"), ("nobody@example.com", "alice-correct-horse-battery")],
    ids=["wrong-password", "unknown-email"],
)
def test_wrong_credentials_get_the_same_401(resources: Resources, email: str, password: str) -> None:
    # GIVEN a wrong password, or an email nobody registered
    # WHEN logging in
    reply = call("POST", "/api/v1/auth/login", json_body={"email": email, "password": password})
    # THEN both get the same 401: nothing tells which emails exist
    assert reply.status == 401
    assert reply.body == unauthorized_envelope()


@pytest.mark.parametrize(
    "body",
    [
        "",
        "not json",
        "[1, 2]",
        '{"email": "a@example.com"}',
        '{"email": 1, "password": 2}',
        '{"email": "", "password": "x"}',
    ],
)
def test_malformed_login_bodies_are_400_not_500(resources: Resources, body: str) -> None:
    reply = call("POST", "/api/v1/auth/login", body=body, headers={"Content-Type": "application/json"})
    assert reply.status == 400, reply.body
    assert reply.body["error"]["code"] in ("INVALID_INPUT", "INVALID_JSON")


def _claims(resources: Resources, **overrides: object) -> dict[str, object]:
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": resources.alice.user_id,
        "email": resources.alice.email,
        "iat": now,
        "exp": now + 600,
        "jti": uuid.uuid4().hex,
    }
    claims.update(overrides)
    return claims


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _tampered(resources: Resources) -> str:
    # A valid token whose payload is swapped for Bob's identity, keeping Alice's signature.
    header, _, signature = jwt.encode(_claims(resources), resources.secret, algorithm="HS256").split(".")
    payload = _b64(json.dumps(_claims(resources, sub=resources.bob.user_id)).encode())
    return f"{header}.{payload}.{signature}"


def _alg_none(resources: Resources) -> str:
    header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{_b64(json.dumps(_claims(resources)).encode())}."


BAD_AUTHORIZATION: dict[str, Callable[[Resources, str], str | None]] = {
    "missing header": lambda r, t: None,
    "no Bearer": lambda r, t: t,
    "Bearer with a colon": lambda r, t: f"Bearer: {t}",
    "Basic scheme": lambda r, t: f"Basic {t}",
    "Bearer and nothing": lambda r, t: "Bearer ",
    "garbage": lambda r, t: "Bearer not.a.token",
    "expired": lambda r, t: (
        "Bearer "
        + jwt.encode(_claims(r, iat=int(time.time()) - 7200, exp=int(time.time()) - 3600), r.secret, algorithm="HS256")
    ),
    "wrong key": lambda r, t: "Bearer " + jwt.encode(_claims(r), "x" * 48, algorithm="HS256"),
    "alg none": lambda r, t: "Bearer " + _alg_none(r),
    "tampered payload": lambda r, t: "Bearer " + _tampered(r),
    "missing claims": lambda r, t: "Bearer " + jwt.encode({"exp": int(time.time()) + 60}, r.secret, algorithm="HS256"),
    "two tokens": lambda r, t: f"Bearer {t} {t}",
}


@pytest.mark.parametrize("kind", list(BAD_AUTHORIZATION))
def test_every_bad_token_gets_exactly_the_guides_401(resources: Resources, alice_token: str, kind: str) -> None:
    # GIVEN an Authorization header that is wrong in one way
    authorization = BAD_AUTHORIZATION[kind](resources, alice_token)
    headers = {} if authorization is None else {"Authorization": authorization}
    # WHEN it is sent to an authenticated route
    reply = call("GET", DEPLOYMENTS, headers=headers)
    # THEN the answer is the guide's 401 envelope, word for word, and nothing else
    assert reply.status == 401
    assert reply.body == unauthorized_envelope()
    assert "X-RateLimit-Remaining" not in reply.headers


def test_a_bad_token_is_401_on_every_protected_route(resources: Resources) -> None:
    for method, path in [
        ("POST", DEPLOYMENTS),
        ("GET", f"{DEPLOYMENTS}/dep-000000000000"),
        ("DELETE", f"{DEPLOYMENTS}/dep-000000000000"),
        ("GET", f"{DEPLOYMENTS}/dep-000000000000/logs"),
        ("POST", "/api/v1/predict/dep-000000000000"),
        ("GET", "/api/v1/predict/dep-000000000000/health"),
    ]:
        reply = call(method, path, headers={"Authorization": "Bearer nope"})
        assert (reply.status, reply.body) == (401, unauthorized_envelope()), (method, path)
