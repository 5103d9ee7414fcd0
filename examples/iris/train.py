"""Train the iris example model and write it, with its serveml.json, to examples/iris/model/.

Uses the copy of the iris data that ships inside scikit-learn, so it needs no network.
Run: .venv/bin/python examples/iris/train.py [--out DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path

import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

DEFAULT_OUT = Path(__file__).resolve().parent / "model"
LABELS = {"0": "setosa", "1": "versicolor", "2": "virginica"}


def train(out: Path) -> Path:
    """Fit the model, write model.joblib and serveml.json into ``out``; return ``out``."""
    iris = load_iris()
    features, target = iris.data, iris.target
    model = LogisticRegression(max_iter=500)
    model.fit(features, target)
    accuracy = float(model.score(features, target))

    out.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, out / "model.joblib")
    manifest = {
        "name": "iris",
        "framework": "sklearn",
        "model_file": "model.joblib",
        "version": "1.0.0",
        "training_date": dt.date.today().isoformat(),
        "metrics": {"accuracy": round(accuracy, 4)},
        "labels": LABELS,
        # One 2-D input: a batch of rows of the four iris measurements, in load_iris() order.
        "inputs": [{"name": "input", "dtype": "float64", "shape": [-1, features.shape[1]]}],
        "max_batch_rows": 10000,
    }
    (out / "serveml.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output directory (default: {DEFAULT_OUT})")
    out = train(parser.parse_args().out)
    print(f"wrote {out / 'model.joblib'} and {out / 'serveml.json'}")


if __name__ == "__main__":
    main()
