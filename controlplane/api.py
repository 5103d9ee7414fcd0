"""The control plane's HTTP API (API Gateway HTTP API, payload v2): handler ``controlplane.api.handler``.

Every request passes ``_admit`` first, outside the router: the body size, then (except for the
two public routes) the bearer token and the caller's rate limit. Only then does Powertools' router
pick the route. Errors of every kind leave as ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError

from controlplane import aws, functions, logs, passwords, ratelimit, settings, store, tokens
from controlplane.errors import (
    ApiError,
    internal,
    invalid_input,
    invalid_json,
    model_error,
    not_found,
    not_ready,
    payload_too_large,
    rate_limited,
    unauthorized,
)
from runtime.errors import ERROR_CODES

logger = Logger(service="serveml-controlplane")
app = APIGatewayHttpResolver()

PUBLIC_ROUTES = frozenset({("GET", "/health"), ("POST", "/api/v1/auth/login")})
MAX_EMAIL_CHARS = 254
MAX_PASSWORD_CHARS = 1024
MAX_NAME_CHARS = 100
DEFAULT_TAIL = 100
MAX_TAIL = 1000
_CREATE_FIELDS = frozenset({"model_filename", "requirements", "name"})

# Powertools keeps the current event on the router class, so one resolve at a time per process.
# Lambda never runs two invocations in one process; the lock keeps threaded callers (tests, local
# servers) correct. Admission (token, rate limit) runs before it, concurrently.
_resolving = threading.Lock()


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling, once the token checked out, and their quota for this request."""

    claims: tokens.Claims
    quota: ratelimit.Quota


def _json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response[str]:
    return Response(
        status_code=status, content_type=content_types.APPLICATION_JSON, body=json.dumps(body), headers=headers
    )


def _error_response(error: ApiError) -> Response[str]:
    return _json_response(error.status, error.envelope(), error.headers)


def _raw(error: ApiError) -> dict[str, Any]:
    """An error as a finished HTTP API v2 response, for answers given before the router runs."""
    return {
        "statusCode": error.status,
        "headers": {"Content-Type": content_types.APPLICATION_JSON, **error.headers},
        "body": json.dumps(error.envelope()),
        "isBase64Encoded": False,
    }


def _body_bytes(event: APIGatewayProxyEventV2) -> bytes:
    raw = event.body or ""
    if not event.is_base64_encoded:
        return raw.encode()
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise invalid_input("The body is marked base64 but is not valid base64") from None


def _admit(event: APIGatewayProxyEventV2) -> Caller | None:
    """Check size, token and rate limit; the caller (None on a public route) or an ``ApiError``."""
    limit = settings.current().max_body_bytes
    # Before any decoding or parsing. Text is at least one byte a character; base64 is 4/3 the
    # size of what it encodes. Only a body near the limit needs its exact size measured.
    raw_size = len(event.body or "")
    if raw_size > (limit * 4 // 3 + 4 if event.is_base64_encoded else limit):
        raise payload_too_large(limit)
    if len(_body_bytes(event)) > limit:
        raise payload_too_large(limit)
    if (event.http_method.upper(), event.path) in PUBLIC_ROUTES:
        return None
    try:
        claims = tokens.verify(tokens.bearer_token(event.headers.get("authorization")))
    except tokens.InvalidToken as error:
        logger.info("request refused", reason=str(error))
        raise unauthorized() from None
    quota = ratelimit.consume(claims.user_id)
    if not quota.allowed:
        raise rate_limited(quota)
    return Caller(claims=claims, quota=quota)


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Lambda entry point for the HTTP API."""
    request = APIGatewayProxyEventV2(event)
    caller: Caller | None = None
    try:
        caller = _admit(request)
    except ApiError as error:
        response = _raw(error)
    except Exception:
        # The secret or the rate table unreachable: still an envelope, never Lambda's bare 502.
        logger.exception("admission failed")
        response = _raw(internal())
    else:
        with _resolving:
            app.context["caller"] = caller
            response = app.resolve(event, context)
        if caller is not None:
            response.setdefault("headers", {}).update(caller.quota.headers())
    logger.info(
        "request",
        method=request.http_method,
        path=request.path,
        status=response.get("statusCode"),
        user_id=caller.claims.user_id if caller else None,
    )
    return response


# Error handling inside the router


@app.exception_handler(ApiError)  # type: ignore[untyped-decorator]
def _api_error(error: ApiError) -> Response[str]:
    return _error_response(error)


@app.exception_handler(Exception)  # type: ignore[untyped-decorator]
def _unexpected(error: Exception) -> Response[str]:
    logger.exception("unhandled error", error=str(error))
    return _error_response(internal())


@app.not_found
def _no_route(_: Exception) -> Response[str]:
    return _error_response(ApiError(404, "NOT_FOUND", "No such route"))


# Request helpers


def _caller() -> tokens.Claims:
    caller = app.context.get("caller")
    if not isinstance(caller, Caller):  # a public route asked: a programming error, not the user's
        raise internal()
    return caller.claims


def _json_value() -> Any:
    raw = _body_bytes(app.current_event)
    if not raw.strip():
        raise invalid_json("The request body is empty; send a JSON object")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        raise invalid_json(f"The request body is not valid JSON: {error}") from None


def _json_object() -> dict[str, Any]:
    value = _json_value()
    if not isinstance(value, dict):
        raise invalid_input("The request body must be a JSON object")
    return value


def _owned(deployment_id: str) -> store.Deployment:
    # Malformed ids, missing ids and other users' ids are all the same 404.
    found = store.owned_deployment(deployment_id, _caller().user_id)
    if found is None:
        raise not_found()
    return found


def _query_int(name: str, default: int, low: int, high: int) -> int:
    raw = app.current_event.get_query_string_value(name, None)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise invalid_input(f"{name} must be a whole number from {low} to {high}") from None
    if not low <= value <= high:
        raise invalid_input(f"{name} must be a whole number from {low} to {high}")
    return value


# Routes


@app.get("/health")
def health() -> dict[str, Any]:
    return {"status": "ok"}


@app.post("/api/v1/auth/login")
def login() -> dict[str, Any]:
    body = _json_object()
    email, password = body.get("email"), body.get("password")
    if not isinstance(email, str) or not isinstance(password, str) or not email.strip() or not password:
        raise invalid_input("email and password are required strings")
    if len(email) > MAX_EMAIL_CHARS or len(password) > MAX_PASSWORD_CHARS:
        raise invalid_input("email or password is too long")
    # Logins are limited per email too: each costs an argon2 verification, and guesses must be slow.
    quota = ratelimit.consume(f"login:{store.normal_email(email)}")
    if not quota.allowed:
        raise rate_limited(quota)
    user = store.get_user(email)
    if user is None:
        passwords.verify_nothing(password)
        raise unauthorized()
    if not passwords.verify_password(user.password_hash, password):
        raise unauthorized()
    issued = tokens.issue(user.user_id, user.email)
    return {"token": issued.token, "token_type": "Bearer", "expires_in": issued.expires_in}


def _upload_url(key: str) -> dict[str, Any]:
    config = settings.current()
    url = aws.client("s3").generate_presigned_url(
        "put_object",
        Params={"Bucket": config.bucket, "Key": key},
        ExpiresIn=config.upload_url_ttl_s,
        HttpMethod="PUT",
    )
    return {"url": url, "method": "PUT", "expires_in": config.upload_url_ttl_s}


@app.post("/api/v1/deployments")
def create_deployment() -> Response[str]:
    owner = _caller().user_id
    body = _json_object()
    unknown = sorted(set(body) - _CREATE_FIELDS)
    if unknown:
        raise invalid_input(f"unknown fields: {', '.join(unknown)}")
    filename = body.get("model_filename")
    if not isinstance(filename, str) or not store.is_model_filename(filename):
        raise invalid_input(
            "model_filename must be a plain file name ending in one of " + " ".join(store.MODEL_SUFFIXES)
        )
    requirements = body.get("requirements", False)
    if not isinstance(requirements, bool):
        raise invalid_input("requirements must be true or false")
    name = body.get("name")
    if name is not None and (not isinstance(name, str) or len(name) > MAX_NAME_CHARS):
        raise invalid_input(f"name must be a string of at most {MAX_NAME_CHARS} characters")
    deployment = store.create_deployment(owner, filename, requirements=requirements, name=name or None)
    upload = {"model": _upload_url(deployment.model_key)}
    if deployment.requirements_key:
        upload["requirements"] = _upload_url(deployment.requirements_key)
    logger.info("deployment created", deployment_id=deployment.id, user_id=owner)
    return _json_response(201, {"id": deployment.id, "status": deployment.status, "upload": upload})


@app.get("/api/v1/deployments")
def list_deployments() -> dict[str, Any]:
    return {"deployments": [d.public() for d in store.list_deployments(_caller().user_id)]}


@app.get("/api/v1/deployments/<deployment_id>")
def get_deployment(deployment_id: str) -> dict[str, Any]:
    return _owned(deployment_id).public()


@app.delete("/api/v1/deployments/<deployment_id>")
def delete_deployment(deployment_id: str) -> Response[str]:
    deployment = _owned(deployment_id)
    objects = store.delete_uploads(deployment.owner, deployment.id)
    function_name = deployment.function_name or settings.current().function_name(deployment.id)
    function_deleted = functions.delete(function_name)
    # The record goes last: if anything above fails, a retried DELETE still finds it.
    store.delete_deployment(deployment.id)
    logger.info("deployment deleted", deployment_id=deployment.id, objects=objects, function_deleted=function_deleted)
    return Response(status_code=204, body="")


@app.get("/api/v1/deployments/<deployment_id>/logs")
def deployment_logs(deployment_id: str) -> dict[str, Any]:
    deployment = _owned(deployment_id)
    kind = app.current_event.get_query_string_value("type", "runtime") or "runtime"
    if kind not in ("build", "runtime"):
        raise invalid_input("type must be build or runtime")
    tail = _query_int("tail", DEFAULT_TAIL, 1, MAX_TAIL)
    if kind == "build":
        events = (
            logs.build_events(settings.current().codebuild_project, deployment.build_id, tail)
            if deployment.build_id
            else []
        )
    else:
        events = logs.function_events(deployment.function_name, tail) if deployment.function_name else []
    return {"id": deployment.id, "type": kind, "events": events}


def _call_model(deployment: store.Deployment, payload: bytes) -> Response[str]:
    """Invoke the deployment's function and answer with its reply, under the runtime's own status."""
    if deployment.status != "ready" or not deployment.function_name:
        raise not_ready(deployment.status)
    try:
        answer = functions.invoke(deployment.function_name, payload)
    except ClientError as error:
        logger.warning("invoke failed", deployment_id=deployment.id, error=str(error))
        raise model_error(f"The model function could not be invoked ({functions.error_code(error)})") from None
    except BotoCoreError as error:
        logger.warning("invoke failed", deployment_id=deployment.id, error=str(error))
        raise model_error("The model function could not be reached") from None
    decoded = answer.json()
    if answer.function_error:
        kind = decoded.get("errorType") if isinstance(decoded, dict) else None
        logger.warning("model function error", deployment_id=deployment.id, function_error=answer.function_error)
        raise model_error(f"The model function failed{f' ({kind})' if kind else ''}")
    if decoded is None:
        raise model_error("The model function answered something that is not JSON")
    status = 200
    if isinstance(decoded, dict) and isinstance(decoded.get("error"), dict):
        known = ERROR_CODES.get(str(decoded["error"].get("code")))
        status = known.status if known is not None else 502
    # The runtime's bytes go out unchanged: no re-encoding of its floats.
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=answer.payload.decode())


@app.get("/api/v1/deployments/<deployment_id>/health")
def deployment_health(deployment_id: str) -> Response[str]:
    deployment = _owned(deployment_id)
    shown: dict[str, Any] = {"id": deployment.id, "status": deployment.status}
    if deployment.status != "ready":
        return _json_response(200, shown)
    reply = _call_model(deployment, b'{"health": true}')
    shown["health"] = json.loads(str(reply.body))
    return _json_response(reply.status_code, shown)


@app.post("/api/v1/predict/<deployment_id>")
def predict(deployment_id: str) -> Response[str]:
    deployment = _owned(deployment_id)
    _json_value()  # Lambda takes only JSON payloads: a bad body is the caller's 400, not a 502.
    return _call_model(deployment, _body_bytes(app.current_event))


@app.get("/api/v1/predict/<deployment_id>/health")
def predict_health(deployment_id: str) -> Response[str]:
    return _call_model(_owned(deployment_id), b'{"health": true}')
