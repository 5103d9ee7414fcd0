"""One structured log line per invocation and one at init (Powertools Logger), and EMF metrics
(Powertools Metrics): latency, rows, errors by code, cold starts."""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit, single_metric

NAMESPACE = "ServeML"
_PAGE_MB = os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)


def _serialize(record: dict[str, Any]) -> str:
    return orjson.dumps(record, default=str, option=orjson.OPT_SERIALIZE_NUMPY).decode()


def make_logger(service: str) -> Logger:
    """The runtime's logger; SERVEML_LOG_LEVEL sets its level (default INFO)."""
    level = os.environ.get("SERVEML_LOG_LEVEL") or os.environ.get("POWERTOOLS_LOG_LEVEL") or "INFO"
    return Logger(service=service, level=level.upper(), json_serializer=_serialize)


def rss_mb() -> float:
    """Resident memory now, from /proc (cheap: one small read)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return round(int(statm.read().split()[1]) * _PAGE_MB, 1)
    except OSError:
        return 0.0


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


@dataclass(slots=True)
class Stopwatch:
    """Milliseconds per named step, and the total."""

    started: int = field(default_factory=time.perf_counter_ns)
    last: int = 0
    laps: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.last = self.started

    def lap(self, name: str) -> None:
        now = time.perf_counter_ns()
        self.laps[name] = round((now - self.last) / 1e6, 3)
        self.last = now

    def total(self) -> float:
        return round((time.perf_counter_ns() - self.started) / 1e6, 3)


class Telemetry:
    """Logs and metrics of one served model."""

    def __init__(self, service: str, dimensions: dict[str, str]) -> None:
        self.logger = make_logger(service)
        self.debug = os.environ.get("SERVEML_DEBUG", "").lower() in ("1", "true", "yes")
        self.service = service
        self.dimensions = dimensions
        self.metrics = EphemeralMetrics(namespace=NAMESPACE, service=service)
        self.metrics.set_default_dimensions(**dimensions)

    def init(self, fields: dict[str, Any]) -> None:
        self.logger.info("init", extra=fields)

    def init_failed(self, error: Exception, fields: dict[str, Any]) -> None:
        self.logger.error("init failed", extra={"error": str(error), **fields})

    def invocation(self, fields: dict[str, Any], payload: Any = None) -> None:
        """Log the invocation line and emit its metrics."""
        fields["rss_mb"] = rss_mb()
        fields["peak_rss_mb"] = peak_rss_mb()
        if self.debug and payload is not None:
            fields["payload"] = payload
        if fields.get("error_code"):
            self.logger.warning("invocation", extra=fields)
        else:
            self.logger.info("invocation", extra=fields)
        self._metrics(fields)

    def _metrics(self, fields: dict[str, Any]) -> None:
        self.metrics.add_metric(name="Latency", unit=MetricUnit.Milliseconds, value=fields["timings_ms"]["total"])
        self.metrics.add_metric(name="Rows", unit=MetricUnit.Count, value=fields.get("rows") or 0)
        self.metrics.add_metric(name="Errors", unit=MetricUnit.Count, value=1 if fields.get("error_code") else 0)
        if fields.get("cold_start"):
            self.metrics.add_metric(name="ColdStart", unit=MetricUnit.Count, value=1)
        self.metrics.flush_metrics()
        code = fields.get("error_code")
        if code:
            with single_metric(
                name="Errors",
                unit=MetricUnit.Count,
                value=1,
                namespace=NAMESPACE,
                default_dimensions={**self.dimensions, "service": self.service},
            ) as metric:
                metric.add_dimension(name="error_code", value=code)
