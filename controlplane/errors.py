"""The control plane's error responses: every one is ``{"error": {"code", "message", ...}}``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from controlplane.ratelimit import Quota


class ApiError(Exception):
    """An error answered to the caller with its status and envelope."""

    def __init__(
        self, status: int, code: str, message: str, *, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.extra = extra

    def envelope(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, **self.extra}}


UNAUTHORIZED_MESSAGE = "Invalid or expired token"


def unauthorized() -> ApiError:
    """The one 401: the same words whatever was wrong with the credentials."""
    return ApiError(401, "UNAUTHORIZED", UNAUTHORIZED_MESSAGE)


def not_found(what: str = "Deployment") -> ApiError:
    return ApiError(404, "NOT_FOUND", f"{what} not found")


def invalid_input(message: str) -> ApiError:
    return ApiError(400, "INVALID_INPUT", message)


def invalid_json(message: str) -> ApiError:
    return ApiError(400, "INVALID_JSON", message)


def payload_too_large(limit: int) -> ApiError:
    return ApiError(413, "PAYLOAD_TOO_LARGE", f"Request body exceeds {limit} bytes", limit=limit)


def rate_limited(quota: Quota) -> ApiError:
    """The 429, with Retry-After and the X-RateLimit-* headers of the spent quota."""
    return ApiError(
        429,
        "RATE_LIMITED",
        "Rate limit exceeded",
        headers={"Retry-After": str(quota.retry_after), **quota.headers()},
        retry_after=quota.retry_after,
    )


def not_ready(status: str) -> ApiError:
    return ApiError(409, "NOT_READY", f"Deployment is {status}, not ready")


def model_error(message: str) -> ApiError:
    return ApiError(502, "MODEL_ERROR", message)


def internal() -> ApiError:
    return ApiError(500, "INTERNAL_ERROR", "Internal error")
