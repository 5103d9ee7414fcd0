"""The control plane's configuration: read once from the environment into a frozen dataclass."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

MIB = 1024 * 1024
#: SigV4 presigned URLs live at most 7 days: S3 refuses a longer X-Amz-Expires outright.
MAX_UPLOAD_URL_TTL_S = 7 * 24 * 3600


class SettingsError(RuntimeError):
    """A required variable is missing or a number is not a number."""


@dataclass(frozen=True, slots=True)
class Settings:
    users_table: str
    deployments_table: str
    rate_table: str
    bucket: str
    jwt_secret_param: str
    jwt_secret_source: str
    jwt_from_secrets_manager: bool
    token_ttl_s: int
    rate_limit: int
    rate_window_s: int
    upload_url_ttl_s: int
    codebuild_project: str
    ecr_repository: str
    model_role_arn: str
    model_function_prefix: str
    local_function: str | None
    lambda_endpoint_url: str | None
    max_body_bytes: int

    def function_name(self, deployment_id: str) -> str:
        """The model function a deployment is served by."""
        return f"{self.model_function_prefix}{deployment_id}"

    def invoked_name(self, function_name: str) -> str:
        """The name to invoke: the local emulator serves every function as one name."""
        return self.local_function or function_name


def _text(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, "").strip()
    if value:
        return value
    if default is not None:
        return default
    # Empty rather than failing at import: each handler needs only some of these, and a missing
    # one shows up as a clear AWS error naming the empty resource.
    return ""


def _optional(name: str) -> str | None:
    return os.environ.get(name, "").strip() or None


def _positive(name: str, default: int, *, most: int | None = None) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None
    if value <= 0:
        raise SettingsError(f"{name} must be positive, got {value}")
    if most is not None and value > most:
        raise SettingsError(f"{name} must be at most {most}, got {value}")
    return value


def from_environment() -> Settings:
    """Read every SERVEML_* variable the control plane uses."""
    source = _text("SERVEML_JWT_SECRET_SOURCE", "ssm").lower()
    if source not in ("ssm", "secretsmanager"):
        raise SettingsError(f"SERVEML_JWT_SECRET_SOURCE must be ssm or secretsmanager, got {source!r}")
    return Settings(
        users_table=_text("SERVEML_USERS_TABLE"),
        deployments_table=_text("SERVEML_DEPLOYMENTS_TABLE"),
        rate_table=_text("SERVEML_RATE_TABLE"),
        bucket=_text("SERVEML_BUCKET"),
        jwt_secret_param=_text("SERVEML_JWT_SECRET_PARAM"),
        jwt_secret_source=source,
        jwt_from_secrets_manager=source == "secretsmanager",
        token_ttl_s=_positive("SERVEML_TOKEN_TTL_S", 3600),
        rate_limit=_positive("SERVEML_RATE_LIMIT", 60),
        rate_window_s=_positive("SERVEML_RATE_WINDOW_S", 60),
        upload_url_ttl_s=_positive("SERVEML_UPLOAD_URL_TTL_S", 900, most=MAX_UPLOAD_URL_TTL_S),
        codebuild_project=_text("SERVEML_CODEBUILD_PROJECT"),
        ecr_repository=_text("SERVEML_ECR_REPOSITORY"),
        model_role_arn=_text("SERVEML_MODEL_ROLE_ARN"),
        model_function_prefix=_text("SERVEML_MODEL_FUNCTION_PREFIX", "serveml-model-"),
        local_function=_optional("SERVEML_LOCAL_FUNCTION"),
        lambda_endpoint_url=_optional("SERVEML_LAMBDA_ENDPOINT_URL"),
        max_body_bytes=_positive("SERVEML_MAX_BODY_BYTES", MIB),
    )


@functools.cache
def current() -> Settings:
    """The settings of this execution environment, read on first use.

    Tests that change the environment call ``current.cache_clear()``.
    """
    return from_environment()
