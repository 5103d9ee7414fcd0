"""``bench.lambda_app.handler``: the minimal handler or the FastAPI app, as awslambdaric imports
it under the Runtime Interface Emulator (see ``bench.handlers.from_environment``)."""

from __future__ import annotations

from bench.handlers import from_environment

handler = from_environment()
