"""The one error hierarchy of the runtime: every error carries its code and HTTP status.

The handler turns any ``ServeMLError`` into ``{"error": {"code", "message", "details"}}`` in one
place (``runtime.service``); nothing else builds error responses.
"""

from __future__ import annotations

from typing import Any, ClassVar


class ServeMLError(Exception):
    """Base of every error the runtime reports to a caller."""

    code: ClassVar[str] = "INTERNAL_ERROR"
    status: ClassVar[int] = 500

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def envelope(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class RequestError(ServeMLError):
    """The caller sent something the model cannot take; the runtime is fine."""

    status = 400


class InvalidJSON(RequestError):
    code = "INVALID_JSON"


class InvalidInput(RequestError):
    code = "INVALID_INPUT"


class ShapeMismatch(RequestError):
    code = "SHAPE_MISMATCH"


class DtypeMismatch(RequestError):
    code = "DTYPE_MISMATCH"


class NanInput(RequestError):
    code = "NAN_INPUT"


class FeatureMismatch(RequestError):
    code = "FEATURE_MISMATCH"


class PayloadTooLarge(RequestError):
    code = "PAYLOAD_TOO_LARGE"
    status = 413


class BatchTooLarge(RequestError):
    code = "BATCH_TOO_LARGE"
    status = 413


class NotFound(RequestError):
    code = "NOT_FOUND"
    status = 404


class MethodNotAllowed(RequestError):
    code = "METHOD_NOT_ALLOWED"
    status = 405


class InitError(ServeMLError):
    """The model could not be made ready; raised at init, never for a request."""

    status = 500


class ModelLoadFailed(InitError):
    code = "MODEL_LOAD_FAILED"


class UnsupportedFramework(InitError):
    code = "UNSUPPORTED_FRAMEWORK"


class InvalidManifest(InitError):
    code = "INVALID_MANIFEST"


class PredictionFailed(ServeMLError):
    code = "PREDICTION_FAILED"
    status = 500


class Timeout(ServeMLError):
    code = "TIMEOUT"
    status = 504


class InternalError(ServeMLError):
    code = "INTERNAL_ERROR"
    status = 500


def _all_error_classes() -> dict[str, type[ServeMLError]]:
    found: dict[str, type[ServeMLError]] = {}
    pending: list[type[ServeMLError]] = [ServeMLError]
    while pending:
        cls = pending.pop()
        if "code" in vars(cls) and cls is not ServeMLError:
            found[cls.code] = cls
        pending.extend(cls.__subclasses__())
    return found


#: Every documented error code, mapped to the class that raises it.
ERROR_CODES: dict[str, type[ServeMLError]] = _all_error_classes()
