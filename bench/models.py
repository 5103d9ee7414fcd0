"""The models and inputs each latency case runs on, built at bench time (no committed binaries)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from sklearn.datasets import load_iris, make_classification
from sklearn.linear_model import LogisticRegression

#: The iris manifest of tests/functional/conftest.py's write_iris: labels make ServeML map classes
#: to names, which is what a user serving iris would configure.
_IRIS_MANIFEST: dict[str, Any] = {
    "name": "iris",
    "version": "1.2.3",
    "training_date": "2026-12-01",
    "metrics": {"accuracy": 0.97},
    "labels": {"0": "setosa", "1": "versicolor", "2": "virginica"},
    "max_batch_rows": 10000,
}


@dataclass
class Case:
    name: str
    model_dir: Path
    rows: list[list[float]]
    repetitions: int


def iris_case(directory: Path, repetitions: int) -> Case:
    x, y = load_iris(return_X_y=True)
    directory.mkdir(parents=True, exist_ok=True)
    joblib.dump(LogisticRegression(max_iter=500).fit(x, y), directory / "model.joblib")
    (directory / "serveml.json").write_text(json.dumps(_IRIS_MANIFEST))
    return Case("iris LogisticRegression, 1 row", directory, [[5.1, 3.5, 1.4, 0.2]], repetitions)


def batch_case(directory: Path, rows: int, repetitions: int) -> Case:
    x, y = make_classification(n_samples=2000, n_features=30, random_state=0)
    directory.mkdir(parents=True, exist_ok=True)
    joblib.dump(LogisticRegression(max_iter=1000).fit(x, y), directory / "model.joblib")
    (directory / "serveml.json").write_text(
        json.dumps({"name": "random30", "version": "1.0.0", "max_batch_rows": rows})
    )
    # Rounded to 4 decimals, as a client would send them: full float64 reprs would put 10,000 x 30
    # values over Lambda's 6 MB synchronous payload limit.
    batch = np.round(np.random.default_rng(1).normal(size=(rows, 30)), 4).tolist()
    return Case(f"random LogisticRegression, {rows:,} x 30 batch", directory, batch, repetitions)
