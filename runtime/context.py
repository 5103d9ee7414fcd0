"""A Lambda context for invocations made in-process (``serveml test``, the builder's check),
with the same attributes awslambdaric's ``LambdaContext`` gives a handler."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field


@dataclass
class LocalContext:
    """Context of one local invocation: a fresh request id and a deadline ``timeout_s`` from now."""

    timeout_s: float = 300.0
    memory_limit_in_mb: int = 3008
    function_name: str = "serveml-local"
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = "/aws/lambda/serveml-local"
    log_stream_name: str = "local"
    _deadline: float = field(init=False)

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_s

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:000000000000:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))
