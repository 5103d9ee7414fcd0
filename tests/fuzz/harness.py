"""The models the fuzz tests serve, how many cases each gets, and the tally the summary prints.

``SERVEML_FUZZ_EXAMPLES`` sets the total number of cases across the models (default
``DEFAULT_TOTAL``, what CI runs); each model gets its share by ``WEIGHTS``, fewer for the slow
predictors (a pandas pipeline, Keras). Without it the run is derandomized, so CI sees the same
cases every time; with it (the nightly run) hypothesis draws fresh ones.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict

#: Zoo kind -> its share of the cases (relative).
WEIGHTS: dict[str, float] = {
    "sklearn-joblib": 2.0,
    "sklearn-dataframe": 1.0,
    "onnx": 2.2,
    "onnx-multi-input": 2.2,
    "torchscript": 2.2,
    "keras": 0.8,
}
DEFAULT_TOTAL = 10_400


def total_examples() -> int:
    configured = os.environ.get("SERVEML_FUZZ_EXAMPLES")
    return int(configured) if configured else DEFAULT_TOTAL


def nightly() -> bool:
    return bool(os.environ.get("SERVEML_FUZZ_EXAMPLES"))


def examples_for(kind: str) -> int:
    share = WEIGHTS[kind] / sum(WEIGHTS.values())
    return max(1, round(total_examples() * share))


#: kind -> outcome ("prediction", "error:CODE", "refused", ...) -> count
TALLY: defaultdict[str, Counter[str]] = defaultdict(Counter)
