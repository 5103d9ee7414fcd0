"""A small client for the ServeML control-plane API, on the standard library alone.

``Client`` sends JSON requests with the bearer token, retries 429 and 5xx answers with exponential
backoff and jitter (following ``Retry-After`` when the server gives one), and raises ``APIError``
with the server's own code and message for every error answer. ``ClientConfig.from_env`` reads
the settings the user guide documents: ``SERVEML_API_URL``, ``SERVEML_API_KEY``,
``SERVEML_TIMEOUT``, ``SERVEML_MAX_RETRIES`` and ``SERVEML_DEBUG``; where no key is set, the token
that ``serveml login`` saved in ``~/.serveml/credentials`` is used.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import logging
import os
import random
import re
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from http.client import HTTPResponse
from pathlib import Path
from typing import IO, Any

from serveml import __version__

DEFAULT_API_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MAX_RETRIES = 5
#: No single wait is longer than this, whatever the server asks: the next answer says how much more.
MAX_SLEEP_S = 30.0
#: The first backoff step; each retry doubles it, up to ``MAX_SLEEP_S``.
BACKOFF_BASE_S = 0.5
API_PREFIX = "/api/v1"

#: Every status worth another try: the server was busy or briefly broken.
RETRY_ALL = frozenset({429, *range(500, 600)})
#: For predictions: a 500 (the model raised), a 502 (its function failed) or a 504 (it ran out of
#: time) would only happen again, so only the rate limit and "unavailable" are retried.
RETRY_PREDICT = frozenset({429, 503})

log = logging.getLogger("serveml.client")

# Query parameters of a presigned URL that would let anyone who reads the log use it.
_SECRET_QUERY_KEYS = frozenset({"x-amz-signature", "x-amz-credential", "x-amz-security-token", "signature"})
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_FALSE_WORDS = frozenset({"", "0", "false", "no", "off"})


class ClientError(Exception):
    """A request that could not be made or answered: bad settings, no login, an unreachable server."""


class APIError(ClientError):
    """An error answer: the HTTP status and the server's ``{"error": {"code", "message"}}``."""

    def __init__(
        self, status: int, code: str, message: str, *, retry_after: float | None = None, body: Any = None
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after
        self.body = body


@dataclass(frozen=True)
class Response:
    """One answer: status, headers (names lower-cased) and the body, decoded where it is JSON."""

    status: int
    headers: Mapping[str, str]
    raw: bytes
    body: Any = field(default=None)

    @property
    def ok(self) -> bool:
        return self.status < 400


def env_flag(value: str | None) -> bool:
    """``SERVEML_DEBUG=1``/``true``/``yes`` is on; unset, empty, ``0``, ``false``, ``no`` and ``off`` are off."""
    return value is not None and value.strip().lower() not in _FALSE_WORDS


def credentials_path() -> Path:
    """Where ``serveml login`` keeps the token: ``~/.serveml/credentials``."""
    return Path.home() / ".serveml" / "credentials"


def normalise_url(url: str) -> str:
    """``url`` without a trailing slash, so stored and configured URLs compare equal."""
    return url.strip().rstrip("/")


@dataclass(frozen=True)
class Credentials:
    api_url: str
    token: str
    expires_at: datetime | None

    def expired(self, now: datetime | None = None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or datetime.now(UTC))


def save_credentials(api_url: str, token: str, expires_in: float | None, path: Path | None = None) -> Path:
    """Write the login to ``path`` (mode 0600, in a 0700 directory), replacing it atomically."""
    path = path or credentials_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    expires_at = None
    if expires_in is not None:
        expires_at = (datetime.now(UTC) + timedelta(seconds=expires_in)).replace(microsecond=0)
    record = {
        "api_url": normalise_url(api_url),
        "token": token,
        "expires_at": expires_at.isoformat().replace("+00:00", "Z") if expires_at else None,
    }
    # mkstemp creates the file 0600 from the start, so the token is never readable by others, even
    # for a moment; os.replace then swaps it in whole, so a reader never sees half a file.
    fd, tmp = tempfile.mkstemp(prefix=".credentials.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(record, out)
            out.write("\n")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def load_credentials(path: Path | None = None) -> Credentials | None:
    """The saved login, or None when there is none; a damaged file is an error worth saying."""
    path = path or credentials_path()
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ClientError(f"cannot read {path}: {exc}; run `serveml login` again") from None
    if not isinstance(record, dict) or not isinstance(record.get("token"), str) or not record["token"]:
        raise ClientError(f"{path} holds no token; run `serveml login` again")
    expires_at = None
    if isinstance(record.get("expires_at"), str):
        with contextlib.suppress(ValueError):
            expires_at = datetime.fromisoformat(record["expires_at"])
            if expires_at.tzinfo is None:
                expires_at = expires_at.replace(tzinfo=UTC)
    api_url = record.get("api_url")
    return Credentials(
        api_url=normalise_url(api_url) if isinstance(api_url, str) else "",
        token=record["token"],
        expires_at=expires_at,
    )


def _number(env: Mapping[str, str], name: str, default: float, *, minimum: float) -> float:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ClientError(f"{name} must be a number, got {text!r}") from None
    if not value >= minimum:  # also refuses NaN
        raise ClientError(f"{name} must be at least {minimum:g}, got {text!r}")
    return value


@dataclass(frozen=True)
class ClientConfig:
    api_url: str = DEFAULT_API_URL
    token: str | None = None
    timeout: float = DEFAULT_TIMEOUT_S
    max_retries: int = DEFAULT_MAX_RETRIES
    debug: bool = False
    #: Why there is no token, for the message when a request needs one.
    token_problem: str | None = None

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        verbose: bool = False,
        credentials_file: Path | None = None,
        use_saved_login: bool = True,
    ) -> ClientConfig:
        """Settings from the environment, the token from ``SERVEML_API_KEY`` or the saved login.

        The API URL is ``SERVEML_API_URL``, else the URL the saved login was made against, else
        the local default. A saved token is only sent to the URL it was issued by, so pointing
        ``SERVEML_API_URL`` at another server never hands it a token that is not its own.
        ``use_saved_login=False`` ignores the saved login (``serveml login`` replaces it, even
        when it is damaged).
        """
        env = os.environ if env is None else env
        saved = load_credentials(credentials_file) if use_saved_login else None
        api_url = normalise_url(env.get("SERVEML_API_URL", "") or (saved.api_url if saved else "") or DEFAULT_API_URL)
        _check_url(api_url, "SERVEML_API_URL")
        token = env.get("SERVEML_API_KEY", "").strip() or None
        problem = None
        if token is None:
            if saved is None:
                problem = "not logged in: run `serveml login` or set SERVEML_API_KEY"
            elif saved.api_url and saved.api_url != api_url:
                problem = f"the saved login is for {saved.api_url}, not {api_url}: run `serveml login`"
            elif saved.expired():
                assert saved.expires_at is not None
                problem = f"the saved login expired at {saved.expires_at:%Y-%m-%d %H:%M} UTC: run `serveml login`"
            else:
                token = saved.token
        return cls(
            api_url=api_url,
            token=token,
            timeout=_number(env, "SERVEML_TIMEOUT", DEFAULT_TIMEOUT_S, minimum=0.001),
            max_retries=int(_number(env, "SERVEML_MAX_RETRIES", DEFAULT_MAX_RETRIES, minimum=0)),
            debug=verbose or env_flag(env.get("SERVEML_DEBUG")),
            token_problem=problem,
        )


def _check_url(url: str, where: str) -> None:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ClientError(f"{where} must be an http:// or https:// URL, got {redact_url(url)!r}")


def redact_url(url: str) -> str:
    """``url`` with a presigned URL's signature and credential replaced, fit for a log line."""
    parts = urllib.parse.urlsplit(url)
    if not parts.query:
        return url
    query = [
        (key, "REDACTED" if key.lower() in _SECRET_QUERY_KEYS else value)
        for key, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query, safe="/")))


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds from now: either delta-seconds or an HTTP date."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    with contextlib.suppress(ValueError):
        return max(0.0, float(text))
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _decode(raw: bytes, content_type: str) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return raw.decode("utf-8", "replace") if content_type.startswith("text/") or "xml" in content_type else None


def error_from(status: int, reason: str, body: Any, raw: bytes, headers: Mapping[str, str]) -> APIError:
    """An ``APIError`` from any error answer: ServeML's envelope, API Gateway's ``{"message"}``, S3's XML."""
    code, message = f"HTTP_{status}", reason or "error"
    retry_after = retry_after_seconds(headers.get("retry-after"))
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        code = str(error.get("code") or code)
        message = str(error.get("message") or message)
        if retry_after is None and isinstance(error.get("retry_after"), int | float):
            retry_after = float(error["retry_after"])
    elif isinstance(body, dict) and isinstance(body.get("message"), str):
        # API Gateway's own answers (throttling, a missing route, an integration failure).
        message = body["message"]
    elif raw.lstrip().startswith(b"<"):
        # S3 answers presigned PUTs with XML: <Error><Code>AccessDenied</Code><Message>...</Message>
        text = raw.decode("utf-8", "replace")
        found_code = re.search(r"<Code>([^<]*)</Code>", text)
        found_message = re.search(r"<Message>([^<]*)</Message>", text)
        code = found_code.group(1) if found_code else code
        message = found_message.group(1) if found_message else message
    return APIError(status, code, message, retry_after=retry_after, body=body)


Body = bytes | Callable[[], IO[bytes]] | None
#: "No JSON body", so that a JSON ``null`` can still be sent as one.
NO_BODY: Any = object()
Sleep = Callable[[float], None]


class Client:
    """Requests to one control plane. ``sleep`` and ``random`` are injectable for tests."""

    def __init__(
        self,
        config: ClientConfig,
        *,
        sleep: Sleep = time.sleep,
        random: Callable[[], float] = random.random,
    ) -> None:
        self.config = config
        self._sleep = sleep
        self._random = random

    # -- the API ---------------------------------------------------------------------------

    def login(self, email: str, password: str) -> dict[str, Any]:
        return self._json("POST", "/auth/login", {"email": email, "password": password}, auth=False)

    def create_deployment(self, model_filename: str, requirements: bool, **extra: Any) -> dict[str, Any]:
        return self._json(
            "POST", "/deployments", {"model_filename": model_filename, "requirements": requirements, **extra}
        )

    def list_deployments(self) -> Any:
        return self.request("GET", f"{API_PREFIX}/deployments").body

    def get_deployment(self, deployment_id: str) -> dict[str, Any]:
        return self._json("GET", f"/deployments/{_segment(deployment_id)}")

    def delete_deployment(self, deployment_id: str) -> None:
        self.request("DELETE", f"{API_PREFIX}/deployments/{_segment(deployment_id)}")

    def logs(self, deployment_id: str, *, log_type: str | None = None, tail: int | None = None) -> dict[str, Any]:
        query = {key: str(value) for key, value in (("type", log_type), ("tail", tail)) if value is not None}
        return self._json("GET", f"/deployments/{_segment(deployment_id)}/logs", query=query)

    def predict(self, deployment_id: str, payload: Any) -> Response:
        """The model's answer, error envelopes included (they are returned, not raised)."""
        return self.request(
            "POST",
            f"{API_PREFIX}/predict/{_segment(deployment_id)}",
            json_body=payload,
            retry_on=RETRY_PREDICT,
            raise_for_status=False,
        )

    def upload(self, url: str, path: Path, headers: Mapping[str, str] | None = None) -> Response:
        """PUT the file to a presigned URL: no bearer token, only the headers the URL was signed with."""
        size = path.stat().st_size
        sent = {"Content-Type": "application/octet-stream", **(headers or {}), "Content-Length": str(size)}
        # A callable body: every retry re-opens the file, so it is streamed, never held in memory.
        return self._send("PUT", url, sent, lambda: path.open("rb"), retry_on=RETRY_ALL, raise_for_status=True)

    # -- plumbing --------------------------------------------------------------------------

    def _json(
        self,
        method: str,
        path: str,
        body: Any = NO_BODY,
        *,
        auth: bool = True,
        query: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        response = self.request(method, f"{API_PREFIX}{path}", json_body=body, auth=auth, query=query)
        if not isinstance(response.body, dict):
            raise ClientError(f"{method} {path} answered {response.status} without a JSON object")
        return response.body

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = NO_BODY,
        auth: bool = True,
        query: Mapping[str, str] | None = None,
        retry_on: Collection[int] = RETRY_ALL,
        raise_for_status: bool = True,
    ) -> Response:
        url = self.config.api_url + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        headers = {"Accept": "application/json", "User-Agent": _user_agent()}
        if auth:
            if not self.config.token:
                raise ClientError(self.config.token_problem or "no API token: run `serveml login`")
            headers["Authorization"] = f"Bearer {self.config.token}"
        data = None
        if json_body is not NO_BODY:
            data = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        return self._send(method, url, headers, data, retry_on=retry_on, raise_for_status=raise_for_status)

    def _send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: Body,
        *,
        retry_on: Collection[int],
        raise_for_status: bool,
    ) -> Response:
        attempt = 0
        while True:
            response = self._once(method, url, headers, body)
            if response.status not in retry_on or attempt >= self.config.max_retries:
                break
            delay = self._delay(attempt, response)
            if self.config.debug:
                log.info(
                    "retrying %s %s after %s in %.1f s (retry %d of %d)",
                    method,
                    redact_url(url),
                    response.status,
                    delay,
                    attempt + 1,
                    self.config.max_retries,
                )
            self._sleep(delay)
            attempt += 1
        if raise_for_status and not response.ok:
            raise error_from(response.status, _reason(response.status), response.body, response.raw, response.headers)
        return response

    def _delay(self, attempt: int, response: Response) -> float:
        """``Retry-After`` (header, else the envelope's ``retry_after``) when given, else backoff."""
        asked = error_from(response.status, "", response.body, response.raw, response.headers).retry_after
        if asked is not None:
            return min(MAX_SLEEP_S, asked)
        # "Equal jitter": at least half the exponential step, so waits still grow, plus a random
        # part, so that clients throttled together do not all come back at the same moment.
        step = min(MAX_SLEEP_S, BACKOFF_BASE_S * 2.0**attempt)
        return step / 2 + self._random() * step / 2

    def _once(self, method: str, url: str, headers: Mapping[str, str], body: Body) -> Response:
        # Upload URLs come from the server: only HTTP(S), never file: or another scheme urllib knows.
        _check_url(url, "the URL")
        started = time.monotonic()
        with _opened(body) as data:
            request = urllib.request.Request(url, data=data, headers=dict(headers), method=method)  # noqa: S310
            try:
                with _opener_for(url).open(request, timeout=self.config.timeout) as answer:
                    response = _read(answer)
            except urllib.error.HTTPError as answer:
                with answer:
                    response = _read(answer)
            except urllib.error.URLError as exc:
                raise ClientError(f"cannot reach {_origin(url)}: {_why(exc.reason)}") from None
            except TimeoutError:
                raise ClientError(f"{_origin(url)} did not answer within {self.config.timeout:g} s") from None
            except OSError as exc:
                raise ClientError(f"{method} {_origin(url)} failed: {_why(exc)}") from None
        if self.config.debug:
            # Method, URL, status and time only: never the headers (the token) nor the bodies.
            elapsed_ms = (time.monotonic() - started) * 1000
            log.info("%s %s -> %d (%.0f ms)", method, redact_url(url), response.status, elapsed_ms)
        return response


@contextlib.contextmanager
def _opened(body: Body) -> Iterator[bytes | IO[bytes] | None]:
    if callable(body):
        with body() as stream:
            yield stream
    else:
        yield body


def _read(answer: HTTPResponse | urllib.error.HTTPError) -> Response:
    raw = answer.read()
    headers = {name.lower(): value for name, value in answer.headers.items()}
    status = answer.status if isinstance(answer, HTTPResponse) else answer.code
    return Response(status=status, headers=headers, raw=raw, body=_decode(raw, headers.get("content-type", "")))


def _opener_for(url: str) -> urllib.request.OpenerDirector:
    # A proxy from HTTP(S)_PROXY is used for remote servers, but a local control plane is reached
    # directly: a proxy cannot reach this machine's loopback interface.
    host = urllib.parse.urlsplit(url).hostname or ""
    if host in _LOOPBACK_HOSTS:
        return urllib.request.build_opener(urllib.request.ProxyHandler({}))
    return urllib.request.build_opener()


def _segment(value: str) -> str:
    """An id as one path segment: a slash or '..' in it cannot reach another route."""
    return urllib.parse.quote(value, safe="")


def _origin(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _why(reason: object) -> str:
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason)


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "error"


def _user_agent() -> str:
    return f"serveml-cli/{__version__}"
