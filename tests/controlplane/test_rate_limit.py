"""Per-user rate limits, counted atomically in DynamoDB."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from botocore.awsrequest import AWSResponse

from controlplane import aws, ratelimit, store, tokens
from tests.controlplane.conftest import Account, Reply, Resources, call, login

LIMIT = 20
WINDOW_S = 3600


@pytest.fixture
def limited(monkeypatch: pytest.MonkeyPatch, resources: Resources) -> str:
    """A fresh user (so no earlier test has spent their quota) under a limit of 20 an hour."""
    monkeypatch.setenv("SERVEML_RATE_LIMIT", str(LIMIT))
    monkeypatch.setenv("SERVEML_RATE_WINDOW_S", str(WINDOW_S))
    email = f"limited-{uuid.uuid4().hex[:8]}@example.com"
    account = Account(email, "limited-password-1", store.create_user(email, "limited-password-1").user_id)
    away_from_window_end()
    return login(account)


def at_once(count: int, request: Callable[[int], Reply]) -> list[Reply]:
    """``count`` requests from ``count`` threads that all wait at a barrier and start together."""
    gate = threading.Barrier(count)

    def go(index: int) -> Reply:
        gate.wait(timeout=30)
        return request(index)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(go, range(count)))


def away_from_window_end() -> None:
    """Not across a window boundary: each test's counts are for one window."""
    _, end = ratelimit.window(time.time(), WINDOW_S)
    if end - time.time() < 15:
        time.sleep(end - time.time() + 0.5)


def test_authenticated_responses_carry_the_rate_limit_headers(limited: str) -> None:
    # GIVEN a user under a limit of 20 per window
    # WHEN they make two requests
    first = call("GET", "/api/v1/deployments", token=limited)
    second = call("GET", "/api/v1/deployments/dep-000000000000", token=limited)
    # THEN every answer (a 404 too) says the limit, what is left and when the window resets
    _, end = ratelimit.window(time.time(), WINDOW_S)
    assert first.status == 200
    assert second.status == 404
    assert first.headers["X-RateLimit-Limit"] == "20"
    assert first.headers["X-RateLimit-Remaining"] == "19"
    assert second.headers["X-RateLimit-Remaining"] == "18"
    assert first.headers["X-RateLimit-Reset"] == str(end)


def test_concurrent_requests_over_the_limit_get_exactly_the_excess_429s(limited: str) -> None:
    # GIVEN a user with a limit of 20
    # WHEN 50 requests arrive at once (50 threads released together by a barrier)
    replies = at_once(50, lambda _: call("GET", "/api/v1/deployments", token=limited))
    # THEN exactly 20 pass and exactly 30 are refused with Retry-After and the guide's envelope
    passed = [r for r in replies if r.status == 200]
    refused = [r for r in replies if r.status == 429]
    assert (len(passed), len(refused)) == (20, 30)
    assert sorted(int(r.headers["X-RateLimit-Remaining"]) for r in passed) == list(range(20))
    for reply in refused:
        retry_after = int(reply.headers["Retry-After"])
        assert 0 < retry_after <= WINDOW_S
        assert reply.body == {
            "error": {"code": "RATE_LIMITED", "message": "Rate limit exceeded", "retry_after": retry_after}
        }
        assert reply.headers["X-RateLimit-Remaining"] == "0"
        assert reply.headers["X-RateLimit-Limit"] == "20"
    # AND the counter stopped at the limit: refused requests were not counted
    _, end = ratelimit.window(time.time(), WINDOW_S)
    user_id = tokens.verify(limited).user_id
    item = aws.client("dynamodb").get_item(
        TableName="serveml-rate-test", Key=store.to_dynamodb({"key": f"{user_id}#{end - WINDOW_S}"})
    )["Item"]
    assert store.from_dynamodb(item)["count"] == 20


def test_a_new_window_starts_a_new_count(monkeypatch: pytest.MonkeyPatch, resources: Resources) -> None:
    # GIVEN a user who used their whole quota in one window
    monkeypatch.setenv("SERVEML_RATE_LIMIT", "2")
    user = f"usr-{uuid.uuid4().hex}"
    now = 1_800_000_000.0
    spent = [ratelimit.consume(user, now=now).allowed for _ in range(3)]
    # WHEN the next window begins
    later = ratelimit.consume(user, now=now + 60)
    # THEN they may make requests again
    assert spent == [True, True, False]
    assert later.allowed
    assert later.remaining == 1


def test_dynamodb_throttling_is_retried_by_botocore(resources: Resources) -> None:
    # GIVEN DynamoDB answering the first two sends of a GetItem with a throttling error
    client = aws.client("dynamodb")
    sends: list[str] = []

    def throttle(request: object, **_: object) -> AWSResponse | None:
        sends.append("send")
        if len(sends) > 2:
            return None  # the third attempt goes to DynamoDB (moto)
        error = "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException"
        body = b'{"__type":"' + error.encode() + b'","message":"slow down"}'
        return AWSResponse(
            "https://dynamodb", 400, {"x-amzn-ErrorType": "ProvisionedThroughputExceededException"}, _Raw(body)
        )

    client.meta.events.register("before-send.dynamodb.GetItem", throttle)
    try:
        # WHEN the store reads a user
        user = store.get_user(resources.alice.email)
    finally:
        client.meta.events.unregister("before-send.dynamodb.GetItem", throttle)
    # THEN botocore retried with backoff and the read succeeded on the third attempt
    assert user is not None
    assert user.user_id == resources.alice.user_id
    assert len(sends) == 3


class _Raw:
    """The raw stream botocore reads an HTTP response body from."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: object) -> list[bytes]:
        return [self._data]

    def read(self, *_: object) -> bytes:
        data, self._data = self._data, b""
        return data


def test_logins_are_limited_per_email(monkeypatch: pytest.MonkeyPatch, resources: Resources) -> None:
    # GIVEN a limit of 2 and someone guessing a password for one email
    monkeypatch.setenv("SERVEML_RATE_LIMIT", "2")
    monkeypatch.setenv("SERVEML_RATE_WINDOW_S", str(WINDOW_S))
    email = f"guessed-{uuid.uuid4().hex[:8]}@example.com"
    store.create_user(email, "the-real-password")
    away_from_window_end()
    guesses = [
        call("POST", "/api/v1/auth/login", json_body={"email": email, "password": f"guess {i}"}) for i in range(3)
    ]
    # THEN the third guess is refused before its password is even checked
    assert [g.status for g in guesses] == [401, 401, 429]
    assert guesses[2].body["error"]["code"] == "RATE_LIMITED"
    assert int(guesses[2].headers["Retry-After"]) > 0
    # AND, inside the window, the real password is refused too
    real = call("POST", "/api/v1/auth/login", json_body={"email": email, "password": "the-real-password"})
    assert real.status == 429


def test_a_users_quota_is_shared_by_all_their_tokens(monkeypatch: pytest.MonkeyPatch, resources: Resources) -> None:
    # GIVEN a user with a limit of 10 who logged in five times (five tokens)
    monkeypatch.setenv("SERVEML_RATE_LIMIT", "10")
    monkeypatch.setenv("SERVEML_RATE_WINDOW_S", str(WINDOW_S))
    email = f"many-tokens-{uuid.uuid4().hex[:8]}@example.com"
    account = Account(email, "many-tokens-password", store.create_user(email, "many-tokens-password").user_id)
    away_from_window_end()
    tokens_of_one_user = [login(account) for _ in range(5)]
    assert len(set(tokens_of_one_user)) == 5
    # WHEN 30 requests, six on each token, arrive at once
    replies = at_once(30, lambda i: call("GET", "/api/v1/deployments", token=tokens_of_one_user[i % 5]))
    # THEN exactly 10 pass in all: a new login does not buy a new quota
    assert sorted(r.status for r in replies) == [200] * 10 + [429] * 20


def test_concurrent_login_guesses_are_limited_exactly(monkeypatch: pytest.MonkeyPatch, resources: Resources) -> None:
    # GIVEN a limit of 5 and 20 password guesses for one email, sent at once, under varied spellings
    monkeypatch.setenv("SERVEML_RATE_LIMIT", "5")
    monkeypatch.setenv("SERVEML_RATE_WINDOW_S", str(WINDOW_S))
    email = f"raced-{uuid.uuid4().hex[:8]}@example.com"
    store.create_user(email, "the-real-password")
    away_from_window_end()
    spellings = [email, email.upper(), f"  {email} ", email.title()]
    replies = at_once(
        20,
        lambda i: call("POST", "/api/v1/auth/login", json_body={"email": spellings[i % 4], "password": f"guess {i}"}),
    )
    # THEN exactly 5 guesses were checked (401) and 15 refused unchecked (429): the email's quota held
    assert sorted(r.status for r in replies) == [401] * 5 + [429] * 15
    assert all(r.body["error"]["code"] == "RATE_LIMITED" for r in replies if r.status == 429)
