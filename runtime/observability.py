"""One structured log line per invocation and one at init, each carrying its EMF metrics.

The lines have the keys of a Powertools Logger line (level, location, message, timestamp, service,
xray_trace_id) and an ``_aws`` block that CloudWatch reads metrics out of (Embedded Metric
Format): latency, rows, errors and cold starts per invocation, dimensioned by framework and
service. They are written with one ``orjson.dumps`` and one ``write``.

Powertools itself (Logger for warnings and tracebacks, ``single_metric`` for errors by code) is
imported on first use. On the hot path it cost about 190 µs per invocation (half of a one-row
scikit-learn prediction), and importing it at init about 35 ms of every cold start; see
bench/RESULTS.md. The EMF block is checked against Powertools' own in the tests.
"""

from __future__ import annotations

import functools
import os
import resource
import sys
import time
from typing import TYPE_CHECKING, Any

import orjson

from runtime.environment import memory_limit_mb as environment_memory_limit_mb

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger

NAMESPACE = "ServeML"
_PAGE_MB = os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)
_LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "WARN": 30, "ERROR": 40, "CRITICAL": 50}
_INFO, _WARNING = _LEVELS["INFO"], _LEVELS["WARNING"]
_FRESH_MEMORY_MS = 1.0
_MEMORY_MAX_AGE_S = 0.1
_MILLIS = tuple(f",{ms:03d}+0000" for ms in range(1000))
# awslambdaric sets _X_AMZN_TRACE_ID per invocation. os.environ.get decodes the key and value in
# Python (4-6 µs per line on a cold cache); the bytes mapping behind it (CPython's, kept in step
# by every os.environ assignment) answers in one dict lookup.
_TRACE_KEY = "_X_AMZN_TRACE_ID"
_TRACE_KEY_BYTES = _TRACE_KEY.encode()
_ENVIRON_BYTES: dict[bytes, bytes] | None = getattr(os.environ, "_data", None) if os.name == "posix" else None
_LINE_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE

#: The invocation metrics (name, EMF unit), in the order of the EMF block.
INVOCATION_METRICS = (
    ("Latency", "Milliseconds"),
    ("Rows", "Count"),
    ("Errors", "Count"),
    ("ColdStart", "Count"),
)


def log_level() -> str:
    """SERVEML_LOG_LEVEL, else POWERTOOLS_LOG_LEVEL, else INFO."""
    level = os.environ.get("SERVEML_LOG_LEVEL") or os.environ.get("POWERTOOLS_LOG_LEVEL") or "INFO"
    return level.upper()


def make_logger(service: str) -> Logger:
    """A Powertools Logger at the runtime's level, serializing with orjson."""
    from aws_lambda_powertools import Logger

    return Logger(service=service, level=log_level(), json_serializer=_serialize)


def _serialize(record: dict[str, Any]) -> str:
    return orjson.dumps(record, default=str, option=orjson.OPT_SERIALIZE_NUMPY).decode()


def emf_metadata(namespace: str, dimensions: list[str], metrics: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """The ``_aws`` block of an EMF record, without its Timestamp (set per line)."""
    return {
        "CloudWatchMetrics": [
            {
                "Namespace": namespace,
                "Dimensions": [dimensions],
                "Metrics": [{"Name": name, "Unit": unit} for name, unit in metrics],
            }
        ]
    }


def xray_trace_id() -> str | None:
    """The invocation's X-Ray trace id (``Root=1-...;Parent=...``'s root), if Lambda gave one."""
    if _ENVIRON_BYTES is not None:
        raw = _ENVIRON_BYTES.get(_TRACE_KEY_BYTES)
        header = None if raw is None else raw.decode("ascii", "replace")
    else:
        header = os.environ.get(_TRACE_KEY)
    return header.partition(";")[0].partition("=")[2] if header else None


@functools.cache
def _statm() -> int:
    return os.open("/proc/self/statm", os.O_RDONLY | os.O_CLOEXEC)


def rss_mb() -> float:
    """Resident memory now: one pread of /proc/self/statm, on a descriptor kept open."""
    try:
        return round(int(os.pread(_statm(), 64, 0).split()[1]) * _PAGE_MB, 1)
    except OSError:
        return 0.0


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


class Stopwatch:
    """Milliseconds per named step, and the total, to the microsecond: each lap is one clock read,
    the arithmetic is done once, in ``timings`` (with integer division: ``round(x, 3)`` goes
    through float-to-string code that cost 2 µs a call on a cold cache)."""

    __slots__ = ("marks",)

    def __init__(self) -> None:
        self.marks: list[tuple[str, int]] = [("", time.perf_counter_ns())]

    def lap(self, name: str) -> None:
        self.marks.append((name, time.perf_counter_ns()))

    def timings(self) -> dict[str, float]:
        """Each step's milliseconds since the one before, and ``total`` since the start."""
        marks = self.marks
        timings = {}
        before = started = marks[0][1]
        for name, now in marks[1:]:
            timings[name] = (now - before) // 1000 / 1000
            before = now
        timings["total"] = (before - started) // 1000 / 1000
        return timings


class Telemetry:
    """Logs and metrics of one served model."""

    def __init__(self, service: str, dimensions: dict[str, str]) -> None:
        self.debug = os.environ.get("SERVEML_DEBUG", "").lower() in ("1", "true", "yes")
        self.service = service
        self.dimensions = dimensions
        self._level = _LEVELS.get(log_level(), 20)
        self._logger: Logger | None = None
        # Made once: the fields every line starts with, and the _aws block already encoded
        # (everything but its Timestamp), so that a line costs one orjson.dumps of a flat dict.
        self._dimension_values = {**dimensions, "service": service}
        emf = emf_metadata(NAMESPACE, list(self._dimension_values), INVOCATION_METRICS)
        self._emf_metrics = orjson.Fragment(orjson.dumps(emf["CloudWatchMetrics"]))
        self._line_start: dict[str, Any] = {
            "level": "INFO",
            "location": "invocation",
            "message": "invocation",
            "timestamp": "",
            **self._dimension_values,
        }
        self._header = {"service": service}
        self._memory_limit_mb = environment_memory_limit_mb()
        self._second = -1
        self._memory_read_at = -1.0
        self._last_memory = (0.0, 0.0)
        self._second_text = ""

    @property
    def logger(self) -> Logger:
        """Powertools' Logger, for warnings and tracebacks; imported when first needed."""
        if self._logger is None:
            self._logger = make_logger(self.service)
        return self._logger

    def init(self, fields: dict[str, Any]) -> None:
        self._write("INFO", "init", fields)

    def init_failed(self, error: Exception, fields: dict[str, Any]) -> None:
        self._write("ERROR", "init failed", {"error": str(error), **fields})

    def add_fields(self, **fields: Any) -> None:
        """Fields every invocation line carries from now on (the model's version)."""
        self._line_start.update(fields)

    def start_line(self, request_id: str | None, cold_start: bool) -> dict[str, Any]:
        """The invocation's log line, begun: ``Service.handle`` adds its fields as it goes and
        ``invocation`` finishes and writes it (one dict per invocation, never copied)."""
        line = self._line_start.copy()
        line["request_id"] = request_id
        line["cold_start"] = cold_start
        return line

    def invocation(self, fields: dict[str, Any], timings: dict[str, float], context: Any, payload: Any = None) -> None:
        """Finish the line ``start_line`` began and write it, with the invocation's EMF metrics."""
        now = time.time()
        total = timings["total"]
        fields["timings_ms"] = timings
        fields["memory_limit_mb"] = int(getattr(context, "memory_limit_in_mb", 0) or self._memory_limit_mb)
        fields["rss_mb"], fields["peak_rss_mb"] = self._memory(now, total)
        code = fields.get("error_code")
        if (_WARNING if code else _INFO) >= self._level:
            line = fields
            if code:
                line["level"] = "WARNING"
            line["timestamp"] = self._timestamp(now)
            trace = xray_trace_id()
            if trace:
                line["xray_trace_id"] = trace
            if self.debug and payload is not None:
                line["payload"] = payload
        else:  # the level hides the line; its metrics still go out, on a line of their own
            line = self._dimension_values.copy()
        line["_aws"] = {"Timestamp": int(now * 1000), "CloudWatchMetrics": self._emf_metrics}
        line["Latency"] = total
        line["Rows"] = fields.get("rows") or 0
        line["Errors"] = 1 if code else 0
        line["ColdStart"] = 1 if fields["cold_start"] else 0
        sys.stdout.write(orjson.dumps(line, default=str, option=_LINE_OPTIONS).decode())
        sys.stdout.flush()
        if code:
            self._error_metric(code)

    def _memory(self, now: float, took_ms: float) -> tuple[float, float]:
        """Resident and peak memory in MB. Read fresh for any invocation of a millisecond or
        more, and whenever the last reading is 100 ms old; back-to-back quick invocations reuse
        it. The two syscalls cost 5-10 µs each on a cold cache, 5% of a one-row prediction."""
        if took_ms >= _FRESH_MEMORY_MS or now - self._memory_read_at >= _MEMORY_MAX_AGE_S:
            self._memory_read_at = now
            self._last_memory = (rss_mb(), peak_rss_mb())
        return self._last_memory

    def _write(self, level: str, message: str, fields: dict[str, Any]) -> None:
        """A line other than the invocation's (init, init failed)."""
        if _LEVELS[level] < self._level:
            return
        now = time.time()
        line = {"level": level, "location": message, "message": message, "timestamp": self._timestamp(now)}
        line |= {**self._header, **fields}
        sys.stdout.write(orjson.dumps(line, default=str, option=_LINE_OPTIONS).decode())
        sys.stdout.flush()

    def _timestamp(self, now: float) -> str:
        """Powertools' format (``2026-12-03 19:14:18,376+0000``), in UTC as Lambda runs; the
        seconds part is formatted once a second, the milliseconds looked up (formatting them cost
        about 5 µs per line on a cold cache)."""
        second = int(now)
        if second != self._second:
            self._second = second
            self._second_text = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(second))
        return self._second_text + _MILLIS[int(now * 1000) % 1000]

    def _error_metric(self, code: str) -> None:
        """Errors by code: one more EMF record, with error_code as a dimension (errors are rare)."""
        from aws_lambda_powertools.metrics import MetricUnit, single_metric

        with single_metric(
            name="Errors",
            unit=MetricUnit.Count,
            value=1,
            namespace=NAMESPACE,
            default_dimensions=self._dimension_values,
        ) as metric:
            metric.add_dimension(name="error_code", value=code)
