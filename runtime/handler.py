"""The Lambda entry point: ``runtime.handler.handler``.

The model loads once, when Lambda imports this module (init). A model that cannot load stops
init with one error that names its code, the path and the cause. Under awslambdaric, events are
then parsed with orjson (``runtime.marshaller``).
"""

from __future__ import annotations

from typing import Any

from runtime import marshaller
from runtime.service import load_service

service = load_service()
marshaller.install()  # events parsed with orjson from here on (under awslambdaric only)


def handler(event: Any, context: Any) -> bytes:
    """Answer one invocation with encoded JSON (awslambdaric passes bytes through untouched)."""
    return service.handle(event, context)
