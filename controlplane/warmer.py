"""The warmer: handler ``controlplane.warmer.handler``, run on a schedule.

Every model function (name starting with SERVEML_MODEL_FUNCTION_PREFIX) gets one ``{"warmup": true}``
invocation, at most ``CONCURRENCY`` at a time, so each keeps a warm instance. One log line says
how many were warmed and which failed, with the error.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError

from controlplane import functions, settings

logger = Logger(service="serveml-warmer")

CONCURRENCY = 8
WARMUP = b'{"warmup": true}'


def warm(name: str) -> str | None:
    """Invoke one function with the warm-up request; the error, or None when it answered warm."""
    try:
        answer = functions.invoke(name, WARMUP)
    except (ClientError, BotoCoreError) as error:
        return str(error)
    reply = answer.json()
    if answer.function_error:
        detail = reply.get("errorMessage") if isinstance(reply, dict) else None
        return f"function error ({answer.function_error})" + (f": {detail}" if detail else "")
    if isinstance(reply, dict) and isinstance(reply.get("error"), dict):
        return f"{reply['error'].get('code')}: {reply['error'].get('message')}"
    return None


def warm_all(prefix: str) -> dict[str, Any]:
    """Warm every function whose name starts with ``prefix``; ``{"warmed": n, "failed": [...]}``."""
    names = sorted(functions.names(prefix))
    with ThreadPoolExecutor(max_workers=CONCURRENCY, thread_name_prefix="serveml-warm") as pool:
        errors = list(pool.map(warm, names))
    failed = [{"name": name, "error": error} for name, error in zip(names, errors, strict=True) if error]
    return {"warmed": len(names) - len(failed), "failed": failed}


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Entry point for the warm-up schedule (EventBridge)."""
    result = warm_all(settings.current().model_function_prefix)
    logger.info("model functions warmed", warmed=result["warmed"], failed=result["failed"])
    return result
