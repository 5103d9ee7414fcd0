"""Model functions in Lambda: create or update one from an image, invoke, delete, list.

Invocations go through ``aws.invoker()`` under ``Settings.invoked_name``: locally that is the
Runtime Interface Emulator, which serves every function as the one name ``function``.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from controlplane import aws, settings

MEMORY_MB = 2048
TIMEOUT_S = 30
#: Lambda takes a new or updated function from Pending to Active in seconds; wait up to 5 minutes.
_WAIT = {"Delay": 2, "MaxAttempts": 150}
# The Runtime Interface Emulator is one instance that takes one invocation at a time: a second,
# concurrent one makes it panic ("ReserveFailed: AlreadyReserved"). Lambda scales out instead.
_one_at_a_time = threading.Lock()


@dataclass(frozen=True, slots=True)
class Answer:
    """A model function's reply: its payload and Lambda's FunctionError (set when the function crashed)."""

    payload: bytes
    function_error: str | None

    def json(self) -> Any:
        """The payload decoded; None when it is not JSON."""
        try:
            return json.loads(self.payload)
        except ValueError:
            return None


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def invoke(function_name: str, payload: bytes) -> Answer:
    """Invoke synchronously (RequestResponse) and return the reply."""
    config = settings.current()
    serial = _one_at_a_time if config.lambda_endpoint_url else contextlib.nullcontext()
    with serial:
        reply = aws.invoker().invoke(
            FunctionName=config.invoked_name(function_name),
            InvocationType="RequestResponse",
            Payload=payload,
        )
        body = reply["Payload"].read()
    return Answer(payload=body, function_error=reply.get("FunctionError"))


def deploy(function_name: str, image_uri: str) -> str:
    """Create the function from ``image_uri``, or point an existing one at it; its ARN once Active."""
    config = settings.current()
    client = aws.client("lambda")
    try:
        created = client.create_function(
            FunctionName=function_name,
            PackageType="Image",
            Code={"ImageUri": image_uri},
            Role=config.model_role_arn,
            MemorySize=MEMORY_MB,
            Timeout=TIMEOUT_S,
            Description="ServeML model function",
        )
        client.get_waiter("function_active_v2").wait(FunctionName=function_name, WaiterConfig=_WAIT)
        return str(created["FunctionArn"])
    except ClientError as error:
        if error_code(error) != "ResourceConflictException":
            raise
    updated = client.update_function_code(FunctionName=function_name, ImageUri=image_uri)
    client.get_waiter("function_updated_v2").wait(FunctionName=function_name, WaiterConfig=_WAIT)
    return str(updated["FunctionArn"])


def delete(function_name: str) -> bool:
    """Delete the function; False when there was none."""
    try:
        aws.client("lambda").delete_function(FunctionName=function_name)
    except ClientError as error:
        if error_code(error) == "ResourceNotFoundException":
            return False
        raise
    return True


def names(prefix: str) -> Iterator[str]:
    """Every function name in the account and region starting with ``prefix``."""
    paginator = aws.client("lambda").get_paginator("list_functions")
    for page in paginator.paginate():
        for function in page.get("Functions", []):
            name = str(function["FunctionName"])
            if name.startswith(prefix):
                yield name
