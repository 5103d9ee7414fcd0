"""boto3 clients, made on first use and reused by every invocation of the execution environment.

Endpoints: boto3 reads ``AWS_ENDPOINT_URL`` (and ``AWS_ENDPOINT_URL_<SERVICE>``) itself, which is
how the tests point everything at a moto server. Only the Lambda *invoke* client may be sent
elsewhere (``SERVEML_LAMBDA_ENDPOINT_URL``: the Runtime Interface Emulator of a local model).

Throttling (DynamoDB's ProvisionedThroughputExceededException, Lambda's TooManyRequests, ...) is
retried by botocore's "standard" retry mode: exponential backoff with full jitter, up to
``MAX_ATTEMPTS`` attempts in all.

Only low-level clients: they are thread-safe once made (boto3 resources are not), and making
them is serialised by a lock because sessions are not.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

import boto3
from botocore.config import Config

from controlplane import settings

MAX_ATTEMPTS = 6
#: A model function may take its whole 30 s timeout (plus a cold start) to answer.
INVOKE_READ_TIMEOUT_S = 60
#: Fewer for invocations: API Gateway gives up after 30 s, so long retry chains only waste time.
INVOKE_MAX_ATTEMPTS = 3

_RETRIES: Any = {"mode": "standard", "max_attempts": MAX_ATTEMPTS}
_making = threading.Lock()


def retry_config(**extra: Any) -> Config:
    """The botocore config every client here uses."""
    return Config(retries=_RETRIES, connect_timeout=5, **extra)


@functools.cache
def _session() -> boto3.session.Session:
    return boto3.session.Session()


@functools.cache
def _client(service: str, endpoint_url: str | None, config: Config) -> Any:
    return _session().client(service, endpoint_url=endpoint_url, config=config)  # type: ignore[call-overload]


_DEFAULT = retry_config()
# SigV4 presigned URLs (the only kind S3 accepts in newer regions).
_S3 = retry_config(signature_version="s3v4")
_INVOKE = Config(
    retries={"mode": "standard", "max_attempts": INVOKE_MAX_ATTEMPTS},
    connect_timeout=5,
    read_timeout=INVOKE_READ_TIMEOUT_S,
    max_pool_connections=16,
)


def client(service: str) -> Any:
    """A cached client for ``service`` (``dynamodb``, ``s3``, ``lambda``, ``codebuild``, ``logs``, ...)."""
    with _making:
        return _client(service, None, _S3 if service == "s3" else _DEFAULT)


def invoker() -> Any:
    """The Lambda client that invokes model functions (``SERVEML_LAMBDA_ENDPOINT_URL`` if set)."""
    endpoint = settings.current().lambda_endpoint_url
    with _making:
        return _client("lambda", endpoint, _INVOKE)
