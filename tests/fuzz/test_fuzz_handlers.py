"""Fuzzing ``Service.handle`` of one model per framework (issue "Reliability and security").

Every case must be answered with encoded JSON that is a correct prediction or a documented error
envelope (``tests.fuzz.checker``): no exception escapes, no 5xx comes from client input, a valid
request gets the model's own answer, and after every case a known good request still does.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import json
import warnings
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from runtime.context import LocalContext
from runtime.errors import InvalidJSON
from runtime.transport import loads
from tests.fuzz import checker, strategies
from tests.fuzz.harness import TALLY, WEIGHTS, examples_for, nightly
from tests.modelzoo import ZooModel


def good_request(zoo: ZooModel, contract: Any) -> dict[str, Any]:
    """The zoo's sample in the plainest form the model takes."""
    if contract.tabular or len(contract.inputs) == 1:
        return {"data": zoo.rows}
    return {"data": strategies._columns(contract, zoo.rows)}


class _Discard(io.TextIOBase):
    def write(self, text: str) -> int:
        return len(text)


def handle(service: Any, event: Any) -> bytes:
    # Warnings as in production, where a numpy overflow warning is printed, not raised; the log
    # lines (two per error) dropped, or a failure's report would be thousands of them.
    with warnings.catch_warnings(), contextlib.redirect_stdout(_Discard()):
        warnings.simplefilter("ignore")
        result: bytes = service.handle(event, LocalContext())
    return result


def is_http(event: Any) -> bool:
    """HTTP-shaped: an ``httpMethod`` (REST v1, ALB) or a ``requestContext.http`` (HTTP API v2, URL)."""
    if not isinstance(event, dict):
        return False
    context = event.get("requestContext")
    return "httpMethod" in event or (isinstance(context, dict) and isinstance(context.get("http"), dict))


def http_request(event: dict[str, Any]) -> Any:
    """The request body an HTTP event carries, decoded independently of the runtime (or None)."""
    body = event.get("body")
    try:
        if event.get("isBase64Encoded"):
            body = base64.b64decode(body, validate=True)
        return json.loads(body)
    except (TypeError, ValueError, binascii.Error, RecursionError):
        return None


def run_case(zoo: ZooModel, service: Any, case: strategies.Case, tally: Any) -> None:
    event = case.event
    if case.text is not None:
        # What the runtime's marshaller does with the event's JSON before the handler runs.
        try:
            event = loads(case.text, "the event")
        except InvalidJSON:
            tally["refused"] += 1
            return
    http = is_http(event)
    result = handle(service, event)
    outcome = checker.check(result, http=http)
    if outcome.kind in ("prediction", "v2"):
        # accepted: as many answers as rows, counted without the runtime's help
        rows = checker.rows_sent(http_request(event) if http else event, service.contract)
        assert rows is not None, f"a prediction for what holds no request: {event!r:.300}"
        checker.check(result, http=http, rows=rows)
    tally["error:" + outcome.code if outcome.code else outcome.kind] += 1
    if case.expected is not None:
        assert outcome.kind in ("prediction", "v2"), f"a valid request was refused: {outcome.body!r:.500}"
        if outcome.kind == "prediction":
            got = outcome.body["predictions"]
        else:
            first = outcome.body["outputs"][0]
            got = _reshape(first["data"], first["shape"])
        assert checker.same_answer(got, case.expected), f"answered {got!r:.300}, the model says {case.expected!r:.300}"
        tally["checked"] += 1


def _reshape(flat: list[Any], shape: list[int]) -> Any:
    if len(shape) <= 1:
        return flat
    width = len(flat) // shape[0]
    return [flat[i * width : (i + 1) * width] for i in range(shape[0])]


def check_good(zoo: ZooModel, service: Any, tally: Any) -> None:
    outcome = checker.check(handle(service, good_request(zoo, service.contract)), http=False, rows=len(zoo.rows))
    assert outcome.kind == "prediction", outcome.body
    assert checker.same_answer(outcome.body["predictions"], zoo.expected), "the known good request went wrong"
    tally["good"] += 1


@pytest.mark.parametrize("kind", list(WEIGHTS))
def test_every_case_gets_an_answer_or_a_documented_error(kind, fuzz_models):
    zoo, service = fuzz_models(kind)
    tally = TALLY[kind]
    check_good(zoo, service, tally)

    @settings(
        max_examples=examples_for(kind),
        deadline=None,
        database=None,  # nothing written into the checkout; failures print their own reproduction
        derandomize=not nightly(),
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
        print_blob=True,
    )
    @given(case=strategies.cases(service.contract, zoo.rows, zoo.expected))
    def fuzz(case: strategies.Case) -> None:
        tally["cases"] += 1
        run_case(zoo, service, case, tally)
        check_good(zoo, service, tally)

    fuzz()
