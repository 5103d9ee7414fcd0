"""Fixtures for handler tests: the iris model the README serves, built at test time, and a way
to call the handler with a sample event from events/ and read what it answered."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import pytest

from runtime.context import LocalContext
from runtime.errors import ERROR_CODES
from runtime.service import Service, load_service

EVENTS = Path(__file__).resolve().parents[2] / "events"
LABELS = {"0": "setosa", "1": "versicolor", "2": "virginica"}


def event(name: str) -> Any:
    """A sample event from events/ (the same files `sam local invoke -e` takes)."""
    return json.loads((EVENTS / f"{name}.json").read_text())


def answer(result: bytes) -> tuple[int, dict[str, Any]]:
    """(HTTP status, response body) of a handler result, direct or HTTP-shaped."""
    decoded = json.loads(result)  # strict JSON: a bare NaN would fail here
    if "statusCode" in decoded:
        return decoded["statusCode"], json.loads(decoded["body"])
    if "error" in decoded:  # a direct invocation: the code says what HTTP would have
        return ERROR_CODES[decoded["error"]["code"]].status, decoded
    return 200, decoded


def write_iris(directory: Path, **manifest: Any) -> Path:
    """The bundled example: iris LogisticRegression with a manifest naming its classes."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    directory.mkdir(parents=True, exist_ok=True)
    joblib.dump(LogisticRegression(max_iter=500).fit(x, y), directory / "model.joblib")
    defaults = {
        "name": "iris",
        "version": "1.2.3",
        "training_date": "2026-12-01",
        "metrics": {"accuracy": 0.97},
        "labels": LABELS,
        "max_batch_rows": 10000,
    }
    (directory / "serveml.json").write_text(json.dumps({**defaults, **manifest}))
    return directory


@pytest.fixture(scope="session")
def iris_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_iris(tmp_path_factory.mktemp("iris") / "model")


@pytest.fixture(scope="session")
def iris(iris_dir: Path) -> Service:
    return load_service(iris_dir)


@pytest.fixture
def call(iris: Service) -> Callable[[Any], tuple[int, dict[str, Any]]]:
    """Invoke the iris service with an event (a dict, or the name of a file in events/)."""

    def invoke(sent: Any, service: Service = iris, context: Any = None) -> tuple[int, dict[str, Any]]:
        payload = event(sent) if isinstance(sent, str) else sent
        return answer(service.handle(payload, context or LocalContext()))

    return invoke
