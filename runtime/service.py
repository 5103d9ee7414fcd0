"""One served model: load it once (``load_service``), then answer invocations (``Service.handle``).

``handle`` runs the same named steps for every invocation: parse the event, read the request
against the contract, predict under the deadline, serialize, log. Every error becomes a response
in one place, ``_failure`` (which gives an unexpected exception the INTERNAL_ERROR code) and
``_error_response``; no exception leaves ``handle``.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

import frameworks
from frameworks.base import Adapter, LoadOptions, Prediction
from frameworks.detect import detect_framework, looks_like_model
from runtime import __version__, environment, protocol, transport
from runtime.contract import Contract
from runtime.errors import (
    BatchTooLarge,
    InitError,
    InternalError,
    ModelLoadFailed,
    PredictionFailed,
    ServeMLError,
    Timeout,
    UnsupportedFramework,
)
from runtime.manifest import MANIFEST_NAME, Manifest, read_manifest
from runtime.observability import Stopwatch, Telemetry, rss_mb
from runtime.transport import Action, Source

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY
#: Time kept back from Lambda's deadline to answer TIMEOUT before the platform kills the invocation.
_DEADLINE_MARGIN_S = 0.5
#: A prediction runs inline when the slowest rate seen so far would take under 1/10 of the time left.
_INLINE_SAFETY = 10
#: The memory guard: a batch may use what is left under the memory limit once this much is kept back
#: (the response, Python's own growth), and needs its input arrays this many times over (the copies
#: frameworks make: float64 for scikit-learn, a DataFrame, a tensor) plus the model's working memory
#: per row measured at warm-up, the whole estimate times the safety factor.
_MEMORY_RESERVE_BYTES = 16 << 20
_INPUT_COPIES = 2
_MEMORY_SAFETY = 2.0
#: Rows of the warm-up batch that measures the model's working memory per row (fewer for a model
#: whose 1-row warm-up was slow, so that measuring takes at most about _MEASURE_MAX_S; none under
#: _MEASURE_MIN_ROWS). Kept small: it is part of every cold start (bench/RESULTS.md, init).
_MEASURE_ROWS = 128
_MEASURE_MIN_ROWS = 8
_MEASURE_MAX_S = 0.05
#: Batches up to this fraction of the rows that fitted at init are not checked: one comparison.
_UNCHECKED_FRACTION = 0.25
_MB = 1 << 20


def default_model_path() -> Path:
    """SERVEML_MODEL_PATH, else the ``model`` directory in the task root."""
    configured = os.environ.get("SERVEML_MODEL_PATH")
    if configured:
        return Path(configured)
    return Path(os.environ.get("LAMBDA_TASK_ROOT") or os.getcwd()) / "model"


def locate(path: Path) -> tuple[Path, Manifest]:
    """The model file (or SavedModel directory) at ``path``, and the manifest beside it."""
    if not path.exists():
        raise ModelLoadFailed(f"no model at {path}: the path does not exist", path=str(path))
    folder = path if path.is_dir() else path.parent
    manifest_path = folder / MANIFEST_NAME
    manifest = read_manifest(manifest_path) if manifest_path.is_file() else Manifest()
    if path.is_file() or looks_like_model(path):
        return path, manifest
    if manifest.model_file:
        model = folder / manifest.model_file
        if not model.exists():
            raise ModelLoadFailed(
                f"{manifest_path} names model_file {manifest.model_file!r}, which is not in {folder}",
                path=str(model),
            )
        return model, manifest
    found = sorted(p for p in folder.iterdir() if p.name != MANIFEST_NAME and looks_like_model(p))
    if len(found) != 1:
        what = f"several model files ({', '.join(p.name for p in found)})" if found else "no model file"
        raise ModelLoadFailed(
            f"{folder} holds {what}; name the one to serve with model_file in {MANIFEST_NAME}",
            path=str(folder),
            found=[p.name for p in found],
        )
    return found[0], manifest


def verify_sha256(model: Path, expected: str) -> None:
    """The model file must hash to the manifest's sha256 (written by ``serveml build``)."""
    if model.is_dir():
        return
    import hashlib  # only models with a sha256 in their manifest pay for it

    digest = hashlib.sha256()
    with model.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != expected.lower():
        raise ModelLoadFailed(
            f"{model} does not match the sha256 in {MANIFEST_NAME}: the file changed after it was built "
            f"(expected {expected}, got {digest.hexdigest()})",
            path=str(model),
            expected=expected,
            got=digest.hexdigest(),
        )


def refuse_code_on_load(model: Path) -> None:
    """Refuse a pickle-based model file (joblib, pickle, gzipped pickle, ``torch.save``) that would
    import anything outside the scan's allow-list: unpickling it could run code.

    The same scan ``serveml build`` runs; a model marked ``"trusted": true`` skips it.
    """
    if model.is_dir():
        return
    from runtime import scan  # pickletools and the compressors: only pickle-based models pay for them

    if not scan.is_pickle_based(model):
        return
    try:
        report = scan.scan(model)
    except OSError as exc:
        raise ModelLoadFailed(
            f"cannot read model {model}: {exc.strerror or exc}", path=str(model), cause=str(exc)
        ) from exc
    except Exception as exc:  # a truncated or corrupted pickle: pickletools raises ValueError, EOFError, ...
        raise ModelLoadFailed(
            f"cannot load model {model}: it is not a readable pickle ({type(exc).__name__}: {exc}); "
            "the file is truncated or corrupted",
            path=str(model),
            cause=f"{type(exc).__name__}: {exc}",
        ) from exc
    if report.safe:
        return
    named = sorted({str(f) for f in report.refused})
    raise ModelLoadFailed(
        f"refusing to load {model}: unpickling it would import {', '.join(named)}, which can run code. "
        f'If you made this file yourself and trust it, mark it "trusted": true in {MANIFEST_NAME} '
        "(serveml build --trust does this)",
        path=str(model),
        refused=named,
    )


@dataclass(frozen=True, slots=True)
class InitTimings:
    import_ms: float
    load_ms: float
    warmup_ms: float
    total_ms: float


class Service:
    """A loaded model and everything needed to answer invocations for it."""

    def __init__(
        self,
        *,
        adapter: Adapter,
        contract: Contract,
        manifest: Manifest,
        model_path: Path,
        threads: int,
        telemetry: Telemetry,
    ) -> None:
        self.adapter = adapter
        self.contract = contract
        self.manifest = manifest
        self.model_path = model_path
        self.threads = threads
        self.telemetry = telemetry
        self.info = protocol.ModelInfo(
            name=manifest.name or model_path.stem.split(".")[0],
            version=manifest.version or "unversioned",
            framework=adapter.name,
            training_date=manifest.training_date,
            metrics=manifest.metrics or None,
            labels=manifest.labels or None,
        )
        telemetry.add_fields(model_version=self.info.version)
        env_rows = os.environ.get("SERVEML_MAX_BATCH_ROWS")
        self.limits = protocol.Limits(
            allow_nan=manifest.allow_nan,
            max_batch_rows=manifest.max_batch_rows or (int(env_rows) if env_rows else None),
        )
        self._fast_spec = protocol.fast_spec(contract)
        timeout = os.environ.get("SERVEML_TIMEOUT")
        self.timeout_cap_s = float(timeout) if timeout else None
        # One worker thread, made on first need: predictions that could come near the deadline run
        # there, so that the handler can answer TIMEOUT instead of being killed mid-way in the
        # framework. Most models never need it, and concurrent.futures is not imported until then.
        self._worker: ThreadPoolExecutor | None = None
        self.cold = True
        self._slowest_s_per_row: float | None = None
        self.warmup_error: str | None = None
        self.init_timings: InitTimings | None = None
        # The memory guard (``_check_memory``): off unless the function's memory size is known.
        limit_mb = environment.configured_memory_mb()
        self.memory_limit_bytes = None if limit_mb is None else limit_mb * _MB
        #: Working memory the model needs per row, beyond its inputs (measured at warm-up).
        self.row_work_bytes = 0.0
        #: Batches of up to this many rows skip the memory check (set after warm-up).
        self._unchecked_rows = sys.maxsize if limit_mb is None else 0

    # -- invocations ---------------------------------------------------------------------------

    def handle(self, event: Any, context: Any) -> bytes:
        """Answer one invocation; always returns encoded JSON, never raises."""
        watch = Stopwatch()
        fields = self.telemetry.start_line(getattr(context, "aws_request_id", None), self.cold)
        self.cold = False
        source = Source.DIRECT
        try:
            # The common request first: a direct {"data": rows} for a single float input, which the
            # marshaller parsed before the handler. Anything else, or anything wrong with it, takes
            # the general path, which raises the errors.
            spec = self._fast_spec
            request = spec is not None and protocol.read_fast(event, spec, self.limits)
            if request:
                watch.lap("parse")
                status, payload = self._answer(request, context, watch, fields)
            else:
                source, status, payload = self._handle_any(event, context, watch, fields)
        except Exception as error:
            status, payload = self._failure(error, fields)
        watch.lap("serialize")
        fields["status"] = status
        direct = source is Source.DIRECT
        if not direct:
            fields["source"] = source.value
        self.telemetry.invocation(fields, watch.timings(), context, event)
        return payload if direct else transport.respond(source, status, payload)

    def _handle_any(
        self, event: Any, context: Any, watch: Stopwatch, fields: dict[str, Any]
    ) -> tuple[Source, int, bytes]:
        """Any event of any transport, for any action."""
        source = transport.source_of(event)
        try:
            invocation = transport.parse(event, source)
            fields["action"] = invocation.action.value
            if invocation.action is Action.PREDICT:
                decoded = transport.decode_body(invocation)
                watch.lap("parse")
                fast = self._fast_spec and protocol.read_fast(decoded, self._fast_spec, self.limits)
                request = fast or protocol.read(decoded, self.contract, self.limits)
                return (source, *self._answer(request, context, watch, fields))
            body = self.warm(fields["cold_start"]) if invocation.action is Action.WARMUP else self.health()
        except Exception as error:  # answered in the protocol of its source
            return (source, *self._failure(error, fields))
        return (source, *self._encode(200, body, fields))

    def _answer(
        self, request: protocol.Request, context: Any, watch: Stopwatch, fields: dict[str, Any]
    ) -> tuple[int, bytes]:
        """Predict on a checked request; the status and the encoded response."""
        fields["action"] = "predict"
        fields["rows"] = request.rows
        fields["protocol"] = request.protocol
        watch.lap("validate")
        prediction = self._predict(request, context)
        watch.lap("predict")
        return self._encode(200, protocol.render(request, prediction, self.info), fields)

    def _predict(self, request: protocol.Request, context: Any) -> Prediction:
        if request.rows > self._unchecked_rows:
            self._check_memory(request)
        budget = self._budget_s(context)
        if budget <= 0:
            raise Timeout("no time left before the Lambda deadline to run the prediction", budget_s=budget)
        rows = request.rows
        slowest = self._slowest_s_per_row
        started = time.perf_counter()
        try:
            # Inline when even the slowest rate seen so far would finish in a tenth of the time
            # left: handing a small prediction to the worker thread costs more than the prediction.
            if slowest is not None and slowest * rows * _INLINE_SAFETY < budget:
                prediction = self.adapter.predict(request.inputs, probabilities=request.probabilities)
            else:
                prediction = self._predict_on_worker(request, budget)
        except ServeMLError:
            raise
        except Exception as exc:
            raise PredictionFailed(
                f"the {self.adapter.name} model raised {type(exc).__name__}: {exc}",
                exception=type(exc).__name__,
            ) from exc
        self._observe(time.perf_counter() - started, rows)
        return prediction

    def _need_bytes(self, input_bytes: float, rows: int) -> float:
        """What a batch is estimated to need: copies of its inputs and the model's working memory."""
        return (input_bytes * _INPUT_COPIES + rows * self.row_work_bytes) * _MEMORY_SAFETY

    def _check_memory(self, request: protocol.Request) -> None:
        """BATCH_TOO_LARGE, before the framework allocates anything, for a batch whose estimated
        need exceeds the memory left under the function's limit (instead of an out-of-memory kill)."""
        limit = self.memory_limit_bytes
        if limit is None:
            return
        rows = request.rows
        need = self._need_bytes(sum(a.nbytes for a in request.inputs.values()), rows)
        rss = rss_mb() * _MB
        free = limit - rss - _MEMORY_RESERVE_BYTES
        if need <= free:
            return
        per_row = need / max(rows, 1)
        fits = max(0, int(free // per_row)) if per_row > 0 else rows
        raise BatchTooLarge(
            f"a batch of {rows} rows would need about {need / _MB:.0f} MB (inputs and the model's working memory, "
            f"with a safety factor of {_MEMORY_SAFETY:g}), but only {max(free, 0) / _MB:.0f} MB is left under the "
            f"function's {limit // _MB} MB memory limit ({rss / _MB:.0f} MB in use, "
            f"{_MEMORY_RESERVE_BYTES // _MB} MB kept back); send at most {fits} rows per request, or raise the "
            "function's memory size",
            rows=rows,
            fits_rows=fits,
            needed_mb=round(need / _MB, 1),
            available_mb=round(max(free, 0) / _MB, 1),
            memory_limit_mb=limit // _MB,
            rss_mb=round(rss / _MB, 1),
        )

    def _observe(self, seconds: float, rows: int) -> None:
        rate = seconds / max(rows, 1)
        if self._slowest_s_per_row is None or rate > self._slowest_s_per_row:
            self._slowest_s_per_row = rate

    def _predict_on_worker(self, request: protocol.Request, budget: float) -> Prediction:
        from concurrent.futures import ThreadPoolExecutor
        from concurrent.futures import TimeoutError as FutureTimeout

        if self._worker is None:
            self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="serveml-predict")
        future = self._worker.submit(self.adapter.predict, request.inputs, probabilities=request.probabilities)
        try:
            return future.result(timeout=None if budget == float("inf") else budget)
        except FutureTimeout as exc:
            # the slow prediction goes on in the worker; the next request queues behind it
            self._observe(budget, request.rows)
            raise Timeout(
                f"the prediction did not finish within {budget:.2f} s; the invocation's deadline "
                "(or SERVEML_TIMEOUT) would have passed. Send fewer rows or raise the function timeout",
                budget_s=round(budget, 3),
                rows=request.rows,
            ) from exc

    def _budget_s(self, context: Any) -> float:
        remaining = getattr(context, "get_remaining_time_in_millis", None)
        budget = (remaining() / 1000 - _DEADLINE_MARGIN_S) if callable(remaining) else float("inf")
        if self.timeout_cap_s is not None:
            budget = min(budget, self.timeout_cap_s)
        return budget

    def _failure(self, error: Exception, fields: dict[str, Any]) -> tuple[int, bytes]:
        """Any exception as a response: its own code, or INTERNAL_ERROR (logged with its traceback)."""
        if not isinstance(error, ServeMLError):
            self.telemetry.logger.exception("unexpected error")
            error = InternalError(f"{type(error).__name__}: {error}")
        return self._error_response(error, fields)

    def _error_response(self, error: ServeMLError, fields: dict[str, Any]) -> tuple[int, bytes]:
        fields["error_code"] = error.code
        fields["error"] = error.message
        return error.status, orjson.dumps(error.envelope(), option=_JSON_OPTIONS, default=_to_plain)

    def _encode(self, status: int, body: dict[str, Any], fields: dict[str, Any]) -> tuple[int, bytes]:
        """The status and the encoded body; a body that cannot be encoded is an INTERNAL_ERROR (500)."""
        try:
            return status, orjson.dumps(body, option=_JSON_OPTIONS, default=_to_plain)
        except TypeError as exc:
            return self._error_response(InternalError(f"the response could not be encoded as JSON: {exc}"), fields)

    def warm(self, cold_start: bool = False) -> dict[str, Any]:
        return {"warmed": True, "cold_start": cold_start, "model": self.info.to_json()}

    def health(self) -> dict[str, Any]:
        import platform

        timings = self.init_timings
        return {
            "status": "ok",
            "loaded": True,
            "model": {**self.info.to_json(), "path": str(self.model_path), "labels": self.info.labels},
            "framework": {"name": self.adapter.name, "versions": self.adapter.versions},
            "runtime": {"serveml": __version__, "python": platform.python_version(), "numpy": np.__version__},
            "contract": self.contract.to_json(),
            "limits": {"allow_nan": self.limits.allow_nan, "max_batch_rows": self.limits.max_batch_rows},
            "threads": self.threads,
            "memory_guard": None
            if self.memory_limit_bytes is None
            else {
                "memory_limit_mb": self.memory_limit_bytes // _MB,
                "row_work_bytes": round(self.row_work_bytes),
                "unchecked_rows": self._unchecked_rows,
            },
            "warmup_error": self.warmup_error,
            "init_ms": None if timings is None else {"import": timings.import_ms, "load": timings.load_ms},
        }

    # -- init ----------------------------------------------------------------------------------

    def warm_up(self) -> None:
        """One prediction on a made-up batch, so the first real request pays no lazy set-up."""
        if not self.contract.concrete or any(s.np_dtype.kind == "O" for s in self.contract.inputs):
            return
        sample = {s.name: np.zeros((1, *s.row_shape), dtype=s.np_dtype) for s in self.contract.inputs}
        try:
            took = self._timed_predict(sample)
            self._observe(took, 1)
        except Exception as exc:
            self.warmup_error = f"{type(exc).__name__}: {exc}"
            self.telemetry.logger.warning("warm-up prediction failed", extra={"error": self.warmup_error})
            return
        if self.memory_limit_bytes is not None:
            if _MEASURE_MAX_S / _MEASURE_MIN_ROWS < took < _MEASURE_MAX_S:
                # Too slow to measure on, but the first call often pays one-time set-up (lazy
                # imports, first allocations, thread pools): a second call says what a row costs.
                took = self._timed_predict(sample)
            self._measure_row_work(took)
            self._set_unchecked_rows()

    def _timed_predict(self, inputs: dict[str, np.ndarray[Any, Any]]) -> float:
        started = time.perf_counter()
        self.adapter.predict(inputs)
        return time.perf_counter() - started

    def _measure_row_work(self, row_s: float) -> None:
        """The model's working memory per row: the growth of the peak RSS (and of Python's traced
        allocations, which numpy reports) over one prediction on a batch of up to ``_MEASURE_ROWS``
        rows, as many as take about ``_MEASURE_MAX_S`` at ``row_s`` a row (a 1-row call's time, whose
        fixed costs make it an upper bound); one-time set-up is mostly paid already."""
        rows = _MEASURE_ROWS if row_s <= 0 else min(_MEASURE_ROWS, int(_MEASURE_MAX_S / row_s))
        if rows < _MEASURE_MIN_ROWS:
            return  # a slow model: measuring would lengthen init; its inputs alone are guarded
        import tracemalloc

        batch = {s.name: np.zeros((rows, *s.row_shape), dtype=s.np_dtype) for s in self.contract.inputs}
        tracing = not tracemalloc.is_tracing()
        reset = environment.reset_peak_rss()
        before = rss_mb() * _MB
        if tracing:
            tracemalloc.start()
        try:
            self.adapter.predict(batch)
            traced = tracemalloc.get_traced_memory()[1] if tracing else 0
        except Exception:  # the 1-row warm-up worked; a batch failing here is the request's to report
            return
        finally:
            if tracing:
                tracemalloc.stop()
        peak = environment.peak_rss_bytes() if reset else None
        grown = 0.0 if peak is None else max(0.0, peak - before)
        self.row_work_bytes = max(grown, float(traced)) / rows

    def _set_unchecked_rows(self) -> None:
        """Batches this small cannot come near the limit (a quarter of what fitted at init): they skip
        the check. Where a row's size is not known from the contract, every batch is checked."""
        limit = self.memory_limit_bytes
        if limit is None or not self.contract.concrete or any(s.np_dtype.kind == "O" for s in self.contract.inputs):
            return
        row_bytes = sum(s.np_dtype.itemsize * int(np.prod(s.row_shape)) for s in self.contract.inputs)
        free = limit - rss_mb() * _MB - _MEMORY_RESERVE_BYTES
        per_row = self._need_bytes(row_bytes, 1)
        if free > 0 and per_row > 0:
            self._unchecked_rows = int(free / per_row * _UNCHECKED_FRACTION)


def _to_plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def load_service(path: str | Path | None = None) -> Service:
    """Load the model at ``path`` (default: SERVEML_MODEL_PATH) and make it ready to serve.

    Raises an ``InitError`` (MODEL_LOAD_FAILED, UNSUPPORTED_FRAMEWORK, INVALID_MANIFEST) whose
    message names the path and the cause.
    """
    started = time.perf_counter()
    threads = environment.prepare()
    model_path = Path(path) if path is not None else default_model_path()
    telemetry = Telemetry("serveml", {"model": model_path.name})
    try:
        model_file, manifest = locate(model_path.resolve())
        if manifest.sha256:
            verify_sha256(model_file, manifest.sha256)
        if not manifest.trusted:
            refuse_code_on_load(model_file)
        try:
            framework = (
                frameworks.framework_name(manifest.framework) if manifest.framework else detect_framework(model_file)
            )
        except UnsupportedFramework as error:
            where = manifest.path if manifest.framework and manifest.path else model_file
            if str(where) in error.message:
                raise
            raise UnsupportedFramework(f"{where}: {error.message}", **{**error.details, "path": str(where)}) from error
        t0 = time.perf_counter()
        adapter_cls = frameworks.adapter_class(framework)
        t1 = time.perf_counter()
        adapter = _load(adapter_cls, model_file, LoadOptions(trusted=manifest.trusted, threads=threads))
        t2 = time.perf_counter()
    except InitError as error:
        telemetry.init_failed(error, {"error_code": error.code, "path": str(model_path), **error.details})
        raise
    contract = manifest.contract or adapter.contract or Contract.unknown()
    telemetry = Telemetry(manifest.name or "serveml", {"framework": framework})
    service = Service(
        adapter=adapter,
        contract=contract,
        manifest=manifest,
        model_path=model_file,
        threads=threads,
        telemetry=telemetry,
    )
    service.warm_up()
    t3 = time.perf_counter()
    service.init_timings = InitTimings(
        import_ms=round((t1 - t0) * 1000, 1),
        load_ms=round((t2 - t1) * 1000, 1),
        warmup_ms=round((t3 - t2) * 1000, 1),
        total_ms=round((t3 - started) * 1000, 1),
    )
    telemetry.init(
        {
            "framework": framework,
            "model_path": str(model_file),
            "model_version": service.info.version,
            "training_date": manifest.training_date,
            "metrics": manifest.metrics,
            "contract_source": contract.source,
            "threads": threads,
            "timings_ms": {
                "import": service.init_timings.import_ms,
                "load": service.init_timings.load_ms,
                "warmup": service.init_timings.warmup_ms,
                "total": service.init_timings.total_ms,
            },
            "python": sys.version.split()[0],
        }
    )
    return service


def _load(adapter_cls: type[Adapter], model_file: Path, options: LoadOptions) -> Adapter:
    try:
        return adapter_cls(model_file, options)
    except ServeMLError:
        raise
    except Exception as exc:
        raise ModelLoadFailed(
            f"cannot load {adapter_cls.name} model {model_file}: {type(exc).__name__}: {exc}",
            path=str(model_file),
            cause=str(exc),
        ) from exc
