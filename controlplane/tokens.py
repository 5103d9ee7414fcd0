"""Bearer tokens: HS256 JWTs (PyJWT) signed with a secret kept in SSM or Secrets Manager.

The secret is read through Powertools' parameter providers, which cache it for
``SECRET_MAX_AGE_S``: a rotated secret is picked up within five minutes, without a fetch per request.
"""

from __future__ import annotations

import functools
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from aws_lambda_powertools.utilities.parameters import SecretsProvider, SSMProvider

from controlplane import aws, settings

ALGORITHM = "HS256"
SECRET_MAX_AGE_S = 300
#: RFC 7518 3.2: an HS256 key must be at least as long as the hash output.
MIN_SECRET_BYTES = 32
_REQUIRED_CLAIMS = ["sub", "email", "iat", "exp", "jti"]


class InvalidToken(Exception):
    """Any token that does not authorise: missing, malformed, expired, forged, wrong algorithm."""


class SecretError(RuntimeError):
    """The signing secret is missing or too short."""


@dataclass(frozen=True, slots=True)
class Claims:
    user_id: str
    email: str
    expires_at: int


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    expires_in: int


@functools.cache
def _ssm() -> SSMProvider:
    return SSMProvider(boto3_client=aws.client("ssm"))


@functools.cache
def _secrets() -> SecretsProvider:
    return SecretsProvider(boto3_client=aws.client("secretsmanager"))


def signing_secret() -> bytes:
    """The HS256 key, from the configured source, cached for five minutes."""
    config = settings.current()
    if not config.jwt_secret_param:
        raise SecretError("SERVEML_JWT_SECRET_PARAM is not set")
    value: Any
    if config.jwt_from_secrets_manager:
        value = _secrets().get(config.jwt_secret_param, max_age=SECRET_MAX_AGE_S)
    else:
        value = _ssm().get(config.jwt_secret_param, max_age=SECRET_MAX_AGE_S, decrypt=True)
    secret = value.encode() if isinstance(value, str) else bytes(value or b"")
    if len(secret) < MIN_SECRET_BYTES:
        raise SecretError(f"the JWT secret {config.jwt_secret_param} is shorter than {MIN_SECRET_BYTES} bytes")
    return secret


def issue(user_id: str, email: str, *, now: float | None = None) -> IssuedToken:
    """A signed token for this user, valid for SERVEML_TOKEN_TTL_S."""
    ttl = settings.current().token_ttl_s
    issued_at = int(time.time() if now is None else now)
    claims = {
        "sub": user_id,
        "email": email,
        "iat": issued_at,
        "exp": issued_at + ttl,
        "jti": uuid.uuid4().hex,
    }
    return IssuedToken(token=jwt.encode(claims, signing_secret(), algorithm=ALGORITHM), expires_in=ttl)


def verify(token: str) -> Claims:
    """The claims of a valid token; ``InvalidToken`` for anything else."""
    secret = signing_secret()
    try:
        # algorithms is explicit: the token's own header never chooses (no "none", no RS/HS confusion).
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": _REQUIRED_CLAIMS})
    except jwt.PyJWTError as error:
        raise InvalidToken(str(error)) from None
    user_id, email = claims.get("sub"), claims.get("email")
    if not isinstance(user_id, str) or not user_id or not isinstance(email, str):
        raise InvalidToken("token claims are not strings")
    return Claims(user_id=user_id, email=email, expires_at=int(claims["exp"]))


def bearer_token(header: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header; ``InvalidToken`` for any other form."""
    if not header:
        raise InvalidToken("no Authorization header")
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    # "Bearer:" (the guide's extra colon) and a bare token both fail here.
    if scheme.lower() != "bearer" or not token or " " in token:
        raise InvalidToken("Authorization is not 'Bearer <token>'")
    return token
