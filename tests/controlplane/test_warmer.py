"""The warmer: one warm-up invocation per model function, and a report of what failed."""

from __future__ import annotations

import uuid

import pytest

from controlplane import warmer
from runtime.context import LocalContext
from tests.controlplane.conftest import Resources, create_zip_function
from tests.e2e.conftest import Server

SCHEDULED = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}


def invocations(server: Server) -> int:
    """How many invocations the emulator has started so far."""
    return server.log.read_text(errors="replace").count("INVOKE START")


def test_every_model_function_is_warmed_and_nothing_else(
    monkeypatch: pytest.MonkeyPatch, resources: Resources, iris_server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN three model functions and one other function in Lambda, served by a real runtime
    prefix = f"serveml-model-w{uuid.uuid4().hex[:6]}-"
    for name in (f"{prefix}a", f"{prefix}b", f"{prefix}c", f"other-{uuid.uuid4().hex[:6]}"):
        create_zip_function(name)
    monkeypatch.setenv("SERVEML_MODEL_FUNCTION_PREFIX", prefix)
    monkeypatch.setenv("SERVEML_LAMBDA_ENDPOINT_URL", iris_server.endpoint)
    monkeypatch.setenv("SERVEML_LOCAL_FUNCTION", "function")
    before = invocations(iris_server)
    # WHEN the schedule runs the warmer
    result = warmer.handler(SCHEDULED, LocalContext())
    # THEN the three model functions were each invoked once, and the other function never
    assert result == {"warmed": 3, "failed": []}
    assert invocations(iris_server) - before == 3
    # AND one structured log line says so
    summary = [r for r in caplog.records if r.getMessage() == "model functions warmed"]
    assert len(summary) == 1
    assert (summary[0].warmed, summary[0].failed) == (3, [])


def test_failures_are_reported_by_name_with_the_error(monkeypatch: pytest.MonkeyPatch, resources: Resources) -> None:
    # GIVEN model functions that Lambda runs but that fail (moto has no Docker: FunctionError)
    prefix = f"serveml-model-f{uuid.uuid4().hex[:6]}-"
    names = [f"{prefix}{n}" for n in ("a", "b", "c")]
    for name in names:
        create_zip_function(name)
    create_zip_function(f"other-{uuid.uuid4().hex[:6]}")
    monkeypatch.setenv("SERVEML_MODEL_FUNCTION_PREFIX", prefix)
    # WHEN the warmer runs
    result = warmer.handler(SCHEDULED, LocalContext())
    # THEN none counts as warmed, and each failure names its function and Lambda's error
    assert result["warmed"] == 0
    assert [f["name"] for f in result["failed"]] == names
    for failure in result["failed"]:
        assert failure["error"].startswith("function error (Handled)")


def test_a_mix_of_warm_and_unreachable_functions(
    monkeypatch: pytest.MonkeyPatch, resources: Resources, iris_server: Server
) -> None:
    # GIVEN the emulator, which serves exactly one function name, "function", and a second model
    # function it does not serve (prefix "function" so that both count as model functions)
    for name in ("function", "function-gone"):
        create_zip_function(name)
    monkeypatch.setenv("SERVEML_MODEL_FUNCTION_PREFIX", "function")
    monkeypatch.setenv("SERVEML_LAMBDA_ENDPOINT_URL", iris_server.endpoint)
    # WHEN the warmer runs
    result = warmer.warm_all("function")
    # THEN the served one is warm and the other is reported with its error
    assert result["warmed"] == 1
    assert [f["name"] for f in result["failed"]] == ["function-gone"]
    assert "404" in result["failed"][0]["error"]
