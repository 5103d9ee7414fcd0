"""The invocation line's parts that are built for speed: the stopwatch, the trace id, the line."""

from __future__ import annotations

import re
import time

import orjson
import pytest

from runtime import observability
from runtime.observability import Stopwatch, Telemetry, xray_trace_id

TRACE = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"


def test_the_trace_id_is_the_root_of_the_header_lambda_sets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("_X_AMZN_TRACE_ID", TRACE)
    assert xray_trace_id() == "1-5759e988-bd862e3fe1be46a994272793"


def test_the_trace_id_follows_each_invocation_s_header(monkeypatch: pytest.MonkeyPatch) -> None:
    # awslambdaric rewrites the variable before every invocation; the fast read must see each one.
    for n in range(3):
        monkeypatch.setenv("_X_AMZN_TRACE_ID", f"Root=1-0000000{n}-abc;Sampled=0")
        assert xray_trace_id() == f"1-0000000{n}-abc"


def test_no_header_no_trace_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("_X_AMZN_TRACE_ID", raising=False)
    assert xray_trace_id() is None
    monkeypatch.setenv("_X_AMZN_TRACE_ID", "")
    assert xray_trace_id() is None


def test_the_trace_id_without_the_bytes_mapping(monkeypatch: pytest.MonkeyPatch) -> None:
    # The fallback, for a Python whose os.environ has no bytes mapping behind it.
    monkeypatch.setattr(observability, "_ENVIRON_BYTES", None)
    monkeypatch.setenv("_X_AMZN_TRACE_ID", TRACE)
    assert xray_trace_id() == "1-5759e988-bd862e3fe1be46a994272793"


def test_stopwatch_steps_add_up_to_the_total_to_the_microsecond() -> None:
    watch = Stopwatch()
    time.sleep(0.002)
    watch.lap("parse")
    watch.lap("validate")
    time.sleep(0.003)
    watch.lap("predict")
    timings = watch.timings()
    assert list(timings) == ["parse", "validate", "predict", "total"]
    assert timings["parse"] >= 2.0
    assert timings["predict"] >= 3.0
    assert timings["validate"] < 1.0
    assert all(round(value, 3) == value for value in timings.values())
    steps = sum(value for name, value in timings.items() if name != "total")
    # each step is truncated to the microsecond on its own, so the sum may fall short by one per step
    assert timings["total"] - 0.003 <= steps <= timings["total"]


def test_a_stopwatch_without_laps_has_only_a_total() -> None:
    assert Stopwatch().timings() == {"total": 0.0}


class _Context:
    aws_request_id = "req-1"
    memory_limit_in_mb = "512"


def test_an_invocation_line_carries_every_field(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("_X_AMZN_TRACE_ID", TRACE)
    monkeypatch.setenv("SERVEML_LOG_LEVEL", "INFO")  # the control-plane tests set WARNING for their session
    telemetry = Telemetry("serveml", {"framework": "onnx", "model": "iris"})
    telemetry.add_fields(model_version="3")
    fields = telemetry.start_line("req-1", True)
    fields["rows"] = 2
    telemetry.invocation(fields, {"parse": 0.01, "total": 1.234}, _Context())
    line = orjson.loads(capsys.readouterr().out)
    assert line["request_id"] == "req-1"
    assert line["cold_start"] is True
    assert line["framework"] == "onnx"
    assert line["model_version"] == "3"
    assert line["memory_limit_mb"] == 512
    assert line["xray_trace_id"] == "1-5759e988-bd862e3fe1be46a994272793"
    assert line["timings_ms"] == {"parse": 0.01, "total": 1.234}
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}\+0000", line["timestamp"])
    assert (line["Latency"], line["Rows"], line["ColdStart"], line["Errors"]) == (1.234, 2, 1, 0)
    emf = line["_aws"]["CloudWatchMetrics"][0]
    assert emf["Dimensions"] == [["framework", "model", "service"]]
    assert {metric["Name"] for metric in emf["Metrics"]} >= {"Latency", "Rows", "Errors", "ColdStart"}
    assert abs(line["_aws"]["Timestamp"] - time.time() * 1000) < 60_000


def test_a_level_that_hides_the_line_still_sends_its_metrics(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SERVEML_LOG_LEVEL", "WARNING")
    telemetry = Telemetry("serveml", {"framework": "onnx", "model": "iris"})
    fields = telemetry.start_line("req-2", False)
    fields["rows"] = 3
    telemetry.invocation(fields, {"total": 0.5}, _Context())
    line = orjson.loads(capsys.readouterr().out)
    assert "request_id" not in line
    assert "message" not in line
    assert (line["Latency"], line["Rows"], line["ColdStart"], line["Errors"]) == (0.5, 3, 0, 0)
    assert line["_aws"]["CloudWatchMetrics"][0]["Namespace"]


def test_the_millisecond_table_matches_formatting() -> None:
    for ms in (0, 7, 42, 999):
        assert observability._MILLIS[ms] == f",{ms:03d}+0000"
