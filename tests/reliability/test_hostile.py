"""Hostile model files, built here to run code when loaded (each would create a marker file), are
refused by the builder's scan, by ``load_service`` and through the real Runtime Interface Emulator
unless the manifest marks them trusted; the marker never appears. Keras Lambda layers are refused
under safe mode."""

from __future__ import annotations

import gzip
import json
import pickle
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from builder.build import BuildError, BuildOptions, build
from runtime.context import LocalContext
from runtime.errors import ModelLoadFailed
from runtime.service import load_service
from tests.e2e.conftest import Server
from tests.reliability.models import Payload, SleepyRegressor

#: What each payload's pickle names (patterns): os.system is posix.system on Linux, and protocols 0-2
#: spell builtins (and subprocess) the Python 2 way.
NAMES = {
    "os.system": r"posix\.system",
    "builtins.exec": r"(builtins|__builtin__)\.exec",
    "subprocess.call": r"(subprocess|commands)\.call",
}


def _iris_model() -> Any:
    x, y = load_iris(return_X_y=True)
    return LogisticRegression(max_iter=500).fit(x, y)


def _pickle(path: Path, obj: Any, protocol: int = pickle.HIGHEST_PROTOCOL) -> None:
    path.write_bytes(pickle.dumps(obj, protocol=protocol))


def _gzip(path: Path, obj: Any) -> None:
    path.write_bytes(gzip.compress(pickle.dumps(obj)))


def _torch(path: Path, obj: Any) -> None:
    import torch

    torch.save(obj, path)


def _nested_in_pipeline(marker: Path, how: str) -> Any:
    # a fitted sklearn pipeline carrying the payload in one of its step's attributes
    pipeline = make_pipeline(StandardScaler(), _iris_model())
    pipeline.steps[0][1].hostile_ = {"cache": [1, 2, Payload(str(marker), how)]}
    return pipeline


#: (file name, how to write it, what to write): every format and nesting the scan must see through.
CASES: dict[str, tuple[str, Callable[[Path, Any], None], Callable[[Path, str], Any]]] = {
    **{
        f"pickle-protocol-{p}": (
            "model.pkl",
            lambda path, obj, p=p: _pickle(path, obj, p),  # type: ignore[misc]
            lambda marker, how: Payload(str(marker), how),
        )
        for p in range(6)  # 0-3 name globals with GLOBAL, 4-5 with STACK_GLOBAL
    },
    "joblib": ("model.joblib", lambda path, obj: joblib.dump(obj, path), lambda m, how: Payload(str(m), how)),
    "joblib-compressed": (
        "model.joblib",
        lambda path, obj: joblib.dump(obj, path, compress=3),
        lambda m, how: Payload(str(m), how),
    ),
    "pickle-gzip": ("model.pkl.gz", _gzip, lambda m, how: Payload(str(m), how)),
    "torch-save": ("model.pt", _torch, lambda m, how: Payload(str(m), how)),
    "nested-dict-joblib": (
        "model.joblib",
        lambda path, obj: joblib.dump(obj, path),
        lambda m, how: {"model": _iris_model(), "extra": Payload(str(m), how)},
    ),
    "nested-pipeline-joblib": ("model.joblib", lambda path, obj: joblib.dump(obj, path), _nested_in_pipeline),
    "nested-torch-save": ("model.pt", _torch, lambda m, how: {"state": [Payload(str(m), how)]}),
}


def write_hostile(case: str, how: str, directory: Path, marker: Path) -> Path:
    name, write, make = CASES[case]
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    write(path, make(marker, how))
    assert not marker.exists(), "writing the file must not run the payload"
    return path


@pytest.mark.parametrize("how", list(NAMES))
@pytest.mark.parametrize("case", list(CASES))
def test_the_builder_and_the_runtime_refuse_a_hostile_file_by_name(
    tmp_path: Path, marker: Path, case: str, how: str
) -> None:
    # GIVEN a model file whose unpickling would run a payload that creates the marker
    model = write_hostile(case, how, tmp_path / "model", marker)

    # WHEN serveml build is asked to build it, THEN its scan refuses it, naming the global
    with pytest.raises(BuildError, match=rf"Refusing {model.name}: .*{NAMES[how]}.*--trust"):
        build(BuildOptions(model=model, out=tmp_path / "out"), echo=lambda *_a, **_k: None)
    assert not marker.exists()

    # WHEN the runtime is asked to load it without "trusted", THEN init fails with MODEL_LOAD_FAILED
    with pytest.raises(ModelLoadFailed) as refused:
        load_service(model.parent)
    assert re.search(NAMES[how], refused.value.message)
    assert '"trusted": true' in refused.value.message
    assert str(model) in refused.value.message
    assert any(re.fullmatch(NAMES[how] + r"( \(in .*\))?", name) for name in refused.value.details["refused"])
    assert not marker.exists()

    # AND a manifest that says nothing about trust changes nothing
    (model.parent / "serveml.json").write_text(json.dumps({"name": "m", "trusted": False}))
    with pytest.raises(ModelLoadFailed, match=NAMES[how]):
        load_service(model.parent)
    assert not marker.exists()


def test_a_custom_class_outside_the_allow_list_loads_only_when_trusted(tmp_path: Path) -> None:
    # GIVEN a harmless model of a class the scan does not know
    joblib.dump(SleepyRegressor().fit(np.zeros((2, 4)), [0, 0]), tmp_path / "model.joblib")

    # THEN it is refused by name untrusted...
    with pytest.raises(ModelLoadFailed, match=r"tests\.reliability\.models\.SleepyRegressor"):
        load_service(tmp_path)

    # ...and served once the manifest marks it trusted
    (tmp_path / "serveml.json").write_text(json.dumps({"trusted": True}))
    service = load_service(tmp_path)
    body = json.loads(service.handle({"data": [[0.0, 0.0, 0.0, 0.0]]}, LocalContext()))
    assert body["predictions"] == [0.0]


@pytest.mark.e2e
@pytest.mark.parametrize("case", ["pickle-protocol-2", "joblib", "pickle-gzip", "nested-pipeline-joblib", "torch-save"])
def test_through_the_emulator_init_fails_cleanly_and_nothing_runs(
    tmp_path: Path, marker: Path, start_server: Callable[..., Server], case: str
) -> None:
    # GIVEN a hostile file served by serveml serve (the RIE in front of awslambdaric)
    model = write_hostile(case, "os.system", tmp_path / "model", marker)
    server = start_server(model)

    # WHEN it is invoked, twice (the emulator retries init on the next invoke)
    for _ in range(2):
        answer = server.invoke({"data": [[5.1, 3.5, 1.4, 0.2]]})

        # THEN each answer is the init error, naming the code, the file and the global
        assert "errorType" in answer.body, answer.body
        assert "MODEL_LOAD_FAILED" in answer.body["errorMessage"]
        assert "posix.system" in answer.body["errorMessage"]
        assert str(model.resolve()) in answer.body["errorMessage"]
        assert not marker.exists()
    assert not marker.exists()


# -- Keras Lambda layers -------------------------------------------------------------------------


def _keras_with_lambda(path: Path, source: str) -> None:
    import keras

    function = eval(source)
    model = keras.Sequential([keras.Input((4,), name="input"), keras.layers.Lambda(function), keras.layers.Dense(1)])
    model.save(path)


@pytest.mark.slow
def test_a_keras_lambda_layer_is_refused_under_safe_mode_and_loads_only_when_trusted(
    tmp_path: Path, marker: Path
) -> None:
    # GIVEN a .keras model whose Lambda layer writes the marker when it runs
    hostile = tmp_path / "hostile" / "model.keras"
    hostile.parent.mkdir()
    _keras_with_lambda(hostile, f"lambda x: (open({str(marker)!r}, 'w').close(), x)[1]")
    marker.unlink(missing_ok=True)  # keras ran the layer once while building the model here

    # THEN safe mode refuses it, saying why and how to trust it, and the layer never runs
    with pytest.raises(ModelLoadFailed) as refused:
        load_service(hostile.parent)
    assert "Lambda" in refused.value.message
    assert "safe_mode" in refused.value.message
    assert '"trusted": true' in refused.value.message
    assert not marker.exists()

    # AND a harmless Lambda layer is refused the same way untrusted, and served when trusted
    benign = tmp_path / "benign" / "model.keras"
    benign.parent.mkdir()
    _keras_with_lambda(benign, "lambda x: x * 2.0")
    with pytest.raises(ModelLoadFailed, match="Lambda"):
        load_service(benign.parent)
    (benign.parent / "serveml.json").write_text(json.dumps({"trusted": True}))
    service = load_service(benign.parent)
    body = json.loads(service.handle({"data": [[1.0, 2.0, 3.0, 4.0]]}, LocalContext()))
    assert len(body["predictions"]) == 1, body
    assert not marker.exists()
