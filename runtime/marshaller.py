"""Lambda's event parsing, done with orjson.

awslambdaric turns every event into Python objects with simplejson before the handler runs, and
documents ``LambdaRuntimeClient.marshaller`` as the place to change that. For a 10,000 x 30 batch
simplejson takes about four times as long as orjson, more than the prediction itself. ``install``
swaps in ``Marshaller`` when the runtime runs under awslambdaric; anywhere else it does nothing.

The behaviour stays awslambdaric's: a payload that is not JSON is refused before the handler with
``Runtime.UnmarshalError``; bytes the handler returns go out untouched; anything else is encoded.
"""

from __future__ import annotations

import sys
from typing import Any

import orjson

from runtime.errors import InvalidJSON
from runtime.transport import loads

_CLIENT_MODULE = "awslambdaric.lambda_runtime_client"


class Marshaller:
    """The interface of awslambdaric's ``LambdaMarshaller``: ``unmarshal_request``, ``marshal_response``."""

    def __init__(self, fault: type[Exception]) -> None:
        self._fault = fault  # awslambdaric's FaultException, taken from the running runtime

    def unmarshal_request(self, request: bytes, content_type: str | None = "application/json") -> Any:
        if content_type != "application/json":
            return request
        try:
            return loads(request, "the event")
        except InvalidJSON as error:
            raise self._fault("Runtime.UnmarshalError", f"Unable to unmarshal input: {error.message}", None) from error

    def marshal_response(self, response: Any) -> tuple[bytes, str]:
        if isinstance(response, bytes):
            return response, "application/json"
        try:
            return orjson.dumps(response, option=orjson.OPT_SERIALIZE_NUMPY), "application/json"
        except TypeError as error:
            raise self._fault("Runtime.MarshalError", f"Unable to marshal response: {error}", None) from error


def install() -> bool:
    """Make the running awslambdaric parse events with orjson; True when it was there to change."""
    client = sys.modules.get(_CLIENT_MODULE)
    if client is None:
        return False
    from awslambdaric.lambda_runtime_exception import FaultException

    # The base class holds the documented class attribute; every client kind inherits it.
    base = getattr(client, "BaseLambdaRuntimeClient", None) or client.LambdaRuntimeClient
    base.marshaller = Marshaller(FaultException)
    return True
