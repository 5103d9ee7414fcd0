"""Faults: each ends in its documented code and a process that still answers the next good request,
or else in one clean init failure naming the code and the path."""

from __future__ import annotations

import builtins
import errno
import hashlib
import io
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import PolynomialFeatures

from runtime.context import LocalContext
from runtime.errors import InitError, InvalidManifest, ModelLoadFailed, UnsupportedFramework
from runtime.observability import rss_mb
from runtime.service import Service, load_service
from tests.e2e.conftest import Server
from tests.modelzoo import ZooModel, build
from tests.reliability.models import RaisingRegressor, SleepyRegressor, SlowStartExpander

GOOD = {"data": [[5.1, 3.5, 1.4, 0.2]]}


def ask(service: Service, sent: Any, context: Any = None) -> tuple[int, Any]:
    answer = json.loads(service.handle(sent, context or LocalContext()))
    return (200 if "error" not in answer else answer["error"].get("status", 0)), answer


def still_serves(service: Service, zoo: ZooModel) -> None:
    body = json.loads(service.handle({"data": zoo.rows}, LocalContext()))
    assert "error" not in body, body
    assert len(body["predictions"]) == len(zoo.rows)


def init_fails(path: Path, error: type[InitError], *fragments: str) -> InitError:
    with pytest.raises(error) as raised:
        load_service(path)
    for fragment in fragments:
        assert fragment in raised.value.message, raised.value.message
    return raised.value


# -- the model file ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sklearn-joblib", "sklearn-pkl", "sklearn-pkl-gz", "onnx", "torchscript"])
@pytest.mark.parametrize("damage", ["truncated", "corrupted", "empty"])
def test_a_damaged_model_file_is_one_clean_init_failure(tmp_path: Path, kind: str, damage: str) -> None:
    zoo = build(kind, tmp_path)
    data = zoo.path.read_bytes()
    if damage == "truncated":
        zoo.path.write_bytes(data[: len(data) // 2])
    elif damage == "corrupted":  # the bytes after the first 16 overwritten with junk
        zoo.path.write_bytes(data[:16] + bytes((b * 7 + 13) % 256 for b in data[16:80]) + data[80:])
    else:
        zoo.path.write_bytes(b"")
    error = init_fails(tmp_path, ModelLoadFailed, str(zoo.path))
    assert error.code == "MODEL_LOAD_FAILED"
    # AND a good copy of the same model loads in the same process afterwards
    good = build(kind, tmp_path / "good")
    still_serves(load_service(good.path.parent), good)


def test_a_sha256_mismatch_is_refused_before_loading(tmp_path: Path) -> None:
    zoo = build("sklearn-joblib", tmp_path)
    actual = hashlib.sha256(zoo.path.read_bytes()).hexdigest()
    manifest = tmp_path / "serveml.json"
    manifest.write_text(json.dumps({"sha256": "0" * 64}))
    error = init_fails(tmp_path, ModelLoadFailed, str(zoo.path), "sha256", actual)
    assert error.details == {"path": str(zoo.path), "expected": "0" * 64, "got": actual}
    # the right hash loads
    manifest.write_text(json.dumps({"sha256": actual.upper()}))
    still_serves(load_service(tmp_path), zoo)


@pytest.mark.parametrize(
    ("manifest", "error", "fragment"),
    [
        ('{"name": "iris", "alow_nan": true}', InvalidManifest, "alow_nan"),
        ('{"max_batch_rows": "100"}', InvalidManifest, "max_batch_rows"),
        ('{"max_batch_rows": 0}', InvalidManifest, "max_batch_rows"),
        ('{"trusted": "yes"}', InvalidManifest, "trusted"),
        ('{"inputs": [{"name": "input", "shape": [-1, 4]}]}', InvalidManifest, "dtype"),
        ('{"inputs": []}', InvalidManifest, "inputs"),
        ('{"inputs": [{"name": "x", "dtype": "float128", "shape": [-1, 4]}]}', InvalidManifest, "inputs"),
        ('["not", "an", "object"]', InvalidManifest, "JSON object"),
        ('{"name": "iris",', InvalidManifest, "not valid JSON"),
        ('{"framework": "caffe"}', UnsupportedFramework, "caffe"),
        ('{"model_file": "missing.joblib"}', ModelLoadFailed, "missing.joblib"),
        ('{"converted_from": {"framework": "sklearn"}}', InvalidManifest, "converted_from"),
    ],
)
def test_a_manifest_with_wrong_or_missing_fields_is_one_clean_init_failure(
    tmp_path: Path, manifest: str, error: type[InitError], fragment: str
) -> None:
    zoo = build("sklearn-joblib", tmp_path)
    (tmp_path / "serveml.json").write_text(manifest)
    raised = init_fails(tmp_path, error, fragment)
    assert str(tmp_path) in raised.message
    (tmp_path / "serveml.json").write_text("{}")
    still_serves(load_service(tmp_path), zoo)


def test_an_unreadable_model_file_is_one_clean_init_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a model file the function's user cannot read (Lambda runs as a user that owns no file)
    zoo = build("sklearn-joblib", tmp_path)
    zoo.path.chmod(0)
    if os.geteuid() == 0:  # root reads anything: the file's opens fail as they would for that user
        real_open = io.open

        def denying_open(file: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(file, str | Path) and Path(file) == zoo.path:
                raise PermissionError(errno.EACCES, "Permission denied", str(file))
            return real_open(file, *args, **kwargs)

        monkeypatch.setattr(io, "open", denying_open)
        monkeypatch.setattr(builtins, "open", denying_open)
    # THEN init fails once, with the code, the path and the cause
    init_fails(tmp_path, ModelLoadFailed, str(zoo.path), "Permission denied")
    monkeypatch.undo()
    zoo.path.chmod(0o644)
    still_serves(load_service(tmp_path), zoo)


def test_a_missing_model_is_one_clean_init_failure(tmp_path: Path) -> None:
    init_fails(tmp_path / "nowhere", ModelLoadFailed, str(tmp_path / "nowhere"), "does not exist")
    (tmp_path / "dangling.joblib").symlink_to(tmp_path / "gone.joblib")
    init_fails(tmp_path / "dangling.joblib", ModelLoadFailed, "does not exist")


# -- predictions ---------------------------------------------------------------------------------


@pytest.fixture
def raising(tmp_path: Path) -> Service:
    joblib.dump(RaisingRegressor().fit(np.zeros((2, 4)), [0, 0]), tmp_path / "model.joblib")
    (tmp_path / "serveml.json").write_text(json.dumps({"trusted": True}))
    return load_service(tmp_path)


def test_a_model_that_raises_answers_prediction_failed_and_serves_the_next(raising: Service) -> None:
    for _ in range(3):
        body = json.loads(raising.handle({"data": [[-1.0, 0.0, 0.0, 0.0]]}, LocalContext()))
        assert body["error"]["code"] == "PREDICTION_FAILED"
        assert "ArithmeticError" in body["error"]["message"]
        body = json.loads(raising.handle({"data": [[2.5, 0.0, 0.0, 0.0]]}, LocalContext()))
        assert body["predictions"] == [2.5]
    assert raising.health()["status"] == "ok"


@pytest.fixture
def sleepy(tmp_path: Path) -> Path:
    joblib.dump(SleepyRegressor().fit(np.zeros((2, 4)), [0, 0]), tmp_path / "model.joblib")
    (tmp_path / "serveml.json").write_text(json.dumps({"trusted": True}))
    return tmp_path


def test_a_slow_prediction_answers_timeout_before_the_deadline_in_process(sleepy: Path) -> None:
    service = load_service(sleepy)
    started = time.monotonic()
    body = json.loads(service.handle({"data": [[2.0, 0, 0, 0]]}, LocalContext(timeout_s=1.5)))
    assert body["error"]["code"] == "TIMEOUT"
    assert time.monotonic() - started < 1.5
    # the slow prediction finishes on the worker; the next one queues behind it and is served
    body = json.loads(service.handle({"data": [[0.0, 0, 0, 0]]}, LocalContext(timeout_s=10)))
    assert body["predictions"] == [0.0]


# -- memory ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 features expanded to 1,771 polynomial ones: about 14 KB of working memory per row."""
    directory = tmp_path_factory.mktemp("wide")
    x = np.random.default_rng(0).random((60, 20))
    joblib.dump(make_pipeline(PolynomialFeatures(3), LinearRegression()).fit(x, x[:, 0]), directory / "model.joblib")
    return directory


def _v2(rows: int) -> dict[str, Any]:
    return {"inputs": [{"name": "input", "shape": [rows, 20], "datatype": "FP64", "data": [0.5] * (rows * 20)}]}


@pytest.mark.parametrize("protocol", ["batch", "v2"])
def test_a_batch_that_would_not_fit_in_memory_is_refused_before_the_model_runs(
    wide: Path, monkeypatch: pytest.MonkeyPatch, protocol: str
) -> None:
    # GIVEN a function whose memory limit leaves about 200 MB above what this process uses
    limit = int(rss_mb()) + 200
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", str(limit))
    service = load_service(wide)
    assert service.row_work_bytes > 10_000  # measured at warm-up: the polynomial features
    peak_before = rss_mb()

    # WHEN a batch needing gigabytes arrives
    sent = {"data": [[0.5] * 20] * 60_000} if protocol == "batch" else _v2(60_000)
    status_body = json.loads(service.handle(sent, LocalContext(memory_limit_in_mb=limit)))

    # THEN it is BATCH_TOO_LARGE, with the numbers and the rows that would fit, and nothing ran
    error = status_body["error"]
    assert error["code"] == "BATCH_TOO_LARGE", error
    details = error["details"]
    assert details["rows"] == 60_000
    assert details["memory_limit_mb"] == limit
    assert 0 < details["fits_rows"] < 60_000
    assert details["needed_mb"] > details["available_mb"]
    assert f"at most {details['fits_rows']} rows" in error["message"]
    assert rss_mb() - peak_before < 150  # the 1,771-wide expansion (800 MB) was never allocated

    # AND a batch of the size it named is served
    fits = details["fits_rows"]
    sent = {"data": [[0.5] * 20] * fits} if protocol == "batch" else _v2(fits)
    body = json.loads(service.handle(sent, LocalContext(memory_limit_in_mb=limit)))
    served = body["predictions"] if protocol == "batch" else body["outputs"][0]["data"]
    assert len(served) == fits


def test_a_slow_first_warm_up_call_does_not_switch_the_guard_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a model whose first call in the process takes 20 ms (one-time set-up), then 8 KB a row
    joblib.dump(SlowStartExpander().fit(np.zeros((2, 2)), [0, 0]), tmp_path / "model.joblib")
    (tmp_path / "serveml.json").write_text(json.dumps({"trusted": True}))
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", str(int(rss_mb()) + 200))

    # WHEN it loads
    service = load_service(tmp_path)

    # THEN its working memory per row is measured on a second, quick call (at 20 ms a row it
    # would have been skipped as a slow model) and a batch far too large is refused
    assert service.row_work_bytes > 4_000, service.health()["memory_guard"]
    body = json.loads(service.handle({"data": [[0.5, 0.5]] * 200_000}, LocalContext()))
    assert body["error"]["code"] == "BATCH_TOO_LARGE", body


def test_without_a_known_memory_limit_the_guard_is_off(wide: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", raising=False)
    service = load_service(wide)
    assert service.health()["memory_guard"] is None
    body = json.loads(service.handle({"data": [[0.5] * 20] * 2_000}, LocalContext()))
    assert len(body["predictions"]) == 2_000


# -- through the Runtime Interface Emulator --------------------------------------------------------


@pytest.mark.e2e
def test_through_the_emulator_a_slow_prediction_answers_timeout_before_the_kill(
    sleepy: Path, start_server: Callable[..., Server]
) -> None:
    # GIVEN a function with a 3 s timeout
    server = start_server(sleepy, "--timeout", "3")
    assert server.invoke({"health": True}).body["status"] == "ok"  # init, outside the slow invoke

    # WHEN a prediction would take 3.5 s (the warm-up saw 0.5 s)
    started = time.monotonic()
    answer = server.invoke({"data": [[3.5, 0, 0, 0]]})

    # THEN the runtime answers TIMEOUT itself, before the emulator's 3 s kill
    assert answer.body["error"]["code"] == "TIMEOUT", answer.body
    assert time.monotonic() - started < 3.0

    # AND the next request is served by the same process (it waits out the slow one on the worker)
    answer = server.invoke({"data": [[0.0, 0, 0, 0]]})
    assert answer.body["predictions"] == [0.0], answer.body
    assert server.process.poll() is None


@pytest.mark.e2e
def test_through_the_emulator_a_batch_too_large_for_memory_is_refused_and_the_process_lives(
    wide: Path, start_server: Callable[..., Server]
) -> None:
    # GIVEN a 256 MB function
    server = start_server(wide, "--memory", "256")
    health = server.invoke({"health": True}).body
    assert health["memory_guard"]["memory_limit_mb"] == 256, health

    # WHEN 20,000 rows arrive (1.6 MB of JSON; the model would need about 600 MB for them)
    answer = server.invoke({"data": [[0.5] * 20] * 20_000})

    # THEN BATCH_TOO_LARGE names the rows that fit, and the same process serves them
    assert answer.body.get("error", {}).get("code") == "BATCH_TOO_LARGE", (answer.body, health)
    fits = answer.body["error"]["details"]["fits_rows"]
    assert 0 < fits < 20_000
    answer = server.invoke({"data": [[0.5] * 20] * fits})
    assert len(answer.body["predictions"]) == fits
    assert server.invoke({"health": True}).body["status"] == "ok"
    assert server.process.poll() is None


@pytest.mark.e2e
def test_through_the_emulator_a_damaged_model_is_one_init_error_with_code_and_path(
    tmp_path: Path, start_server: Callable[..., Server]
) -> None:
    zoo = build("sklearn-joblib", tmp_path / "model")
    zoo.path.write_bytes(zoo.path.read_bytes()[:100])
    server = start_server(zoo.path)
    answer = server.invoke(GOOD)
    assert "MODEL_LOAD_FAILED" in answer.body["errorMessage"], answer.body
    assert str(zoo.path.resolve()) in answer.body["errorMessage"]
