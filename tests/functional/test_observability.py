"""What the runtime writes to CloudWatch: one structured line per invocation, one at init, and
EMF metrics; never the payload unless SERVEML_DEBUG asks for it."""

from __future__ import annotations

import json
import uuid

import pytest

from runtime.context import LocalContext
from runtime.service import load_service
from tests.functional.conftest import write_iris

SECRET_ROW = [5.123456789, 3.5, 1.4, 0.2]


def lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


@pytest.fixture
def fresh(tmp_path, monkeypatch):
    """A service with a logger of its own (Powertools keeps one logger per service name), at INFO
    whatever level other suites left in the environment."""
    monkeypatch.setenv("SERVEML_LOG_LEVEL", "INFO")

    def make():
        return load_service(write_iris(tmp_path / uuid.uuid4().hex, name=f"obs-{uuid.uuid4().hex[:8]}"))

    return make


def test_each_invocation_logs_one_structured_line_with_timings_and_memory(fresh, capsys):
    service = fresh()
    init = [r for r in lines(capsys.readouterr().out) if r.get("message") == "init"]
    # GIVEN a loaded model WHEN it answers one prediction
    service.handle({"data": [SECRET_ROW]}, LocalContext(memory_limit_in_mb=2048, aws_request_id="req-42"))
    out = capsys.readouterr().out
    records = [r for r in lines(out) if r.get("message") == "invocation"]
    # THEN exactly one log line describes it
    assert len(records) == 1
    record = records[0]
    assert record["level"] == "INFO"
    assert record["request_id"] == "req-42"
    assert record["cold_start"] is True
    assert record["framework"] == "sklearn"
    assert record["model_version"] == "1.2.3"
    assert record["rows"] == 1
    assert record["status"] == 200
    assert "error_code" not in record
    assert set(record["timings_ms"]) == {"parse", "validate", "predict", "serialize", "total"}
    assert record["timings_ms"]["total"] >= record["timings_ms"]["predict"] > 0
    assert record["rss_mb"] > 10
    assert record["peak_rss_mb"] >= record["rss_mb"] - 1
    assert record["memory_limit_mb"] == 2048
    # AND the payload is not in the logs
    assert "5.123456789" not in out
    # AND init logged its import / load / warm-up times and the model's version, date and metrics
    assert len(init) == 1
    assert set(init[0]["timings_ms"]) == {"import", "load", "warmup", "total"}
    assert init[0]["model_version"] == "1.2.3"
    assert init[0]["training_date"] == "2026-12-01"
    assert init[0]["metrics"] == {"accuracy": 0.97}


def test_the_second_invocation_is_warm(fresh, capsys):
    service = fresh()
    service.handle({"warmup": True}, LocalContext())
    service.handle({"data": [SECRET_ROW]}, LocalContext())
    records = [r for r in lines(capsys.readouterr().out) if r.get("message") == "invocation"]
    assert [r["cold_start"] for r in records] == [True, False]
    assert records[0]["action"] == "warmup"


def test_errors_log_their_code_at_warning_and_count_in_emf_by_code(fresh, capsys):
    service = fresh()
    capsys.readouterr()
    service.handle({"data": [[1, 2, 3]]}, LocalContext())
    records = lines(capsys.readouterr().out)
    [log] = [r for r in records if r.get("message") == "invocation"]
    assert (log["level"], log["error_code"], log["status"]) == ("WARNING", "SHAPE_MISMATCH", 400)
    emf = [r for r in records if "_aws" in r]
    # the invocation line counts the error; a record of its own counts it by code
    assert log["Errors"] == 1
    by_code = [r for r in emf if "error_code" in r["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0]]
    assert [(r["error_code"], r["Errors"]) for r in by_code] == [("SHAPE_MISMATCH", [1.0])]
    namespace = emf[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"]
    assert namespace == "ServeML"


def test_emf_metrics_carry_latency_rows_and_cold_start(fresh, capsys):
    service = fresh()
    capsys.readouterr()
    service.handle({"data": [SECRET_ROW, SECRET_ROW]}, LocalContext())
    # one line: the log line is the EMF record
    [emf] = [r for r in lines(capsys.readouterr().out) if "_aws" in r]
    assert emf["message"] == "invocation"
    names = {m["Name"] for m in emf["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert {"Latency", "Rows", "Errors", "ColdStart"} <= names
    assert (emf["Rows"], emf["ColdStart"], emf["Errors"]) == (2, 1, 0)
    assert emf["framework"] == "sklearn"


def test_serveml_debug_logs_the_payload(fresh, capsys, monkeypatch):
    monkeypatch.setenv("SERVEML_DEBUG", "true")
    service = fresh()
    service.handle({"data": [SECRET_ROW]}, LocalContext())
    [record] = [r for r in lines(capsys.readouterr().out) if r.get("message") == "invocation"]
    assert record["payload"] == {"data": [SECRET_ROW]}


def test_serveml_log_level_is_honoured(fresh, capsys, monkeypatch):
    monkeypatch.setenv("SERVEML_LOG_LEVEL", "ERROR")
    service = fresh()
    service.handle({"data": [SECRET_ROW]}, LocalContext())
    assert not [r for r in lines(capsys.readouterr().out) if r.get("message") in ("init", "invocation")]


def test_the_emf_block_is_the_one_powertools_writes(fresh, capsys):
    """The invocation line's _aws block and metric values, against Powertools' own EMF record for
    the same namespace, dimensions and metrics (Powertools is the reference, not our reading of
    the spec)."""
    from aws_lambda_powertools.metrics import EphemeralMetrics

    from runtime.observability import INVOCATION_METRICS

    service = fresh()
    capsys.readouterr()
    service.handle({"data": [SECRET_ROW]}, LocalContext())
    [line] = [r for r in lines(capsys.readouterr().out) if "_aws" in r]
    reference = EphemeralMetrics(namespace="ServeML", service=service.telemetry.service)
    reference.set_default_dimensions(framework="sklearn")
    for name, unit in INVOCATION_METRICS:
        reference.add_metric(name=name, unit=unit, value=line[name])
    expected = reference.serialize_metric_set()
    assert line["_aws"]["CloudWatchMetrics"] == expected["_aws"]["CloudWatchMetrics"]
    assert abs(line["_aws"]["Timestamp"] - expected["_aws"]["Timestamp"]) < 60_000
    for name, _ in INVOCATION_METRICS:
        assert [float(line[name])] == expected[name]
    for dimension in expected["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0]:
        assert line[dimension] == expected[dimension]


def test_the_log_level_hides_the_line_but_not_its_metrics(fresh, capsys, monkeypatch):
    monkeypatch.setenv("SERVEML_LOG_LEVEL", "ERROR")
    service = fresh()
    service.handle({"data": [SECRET_ROW]}, LocalContext())
    [line] = lines(capsys.readouterr().out)
    assert "message" not in line
    assert line["Rows"] == 1
    assert line["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "ServeML"
