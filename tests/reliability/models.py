"""Models of the reliability tests that need their own classes (so joblib can load them, they live
in an importable module), and the hostile payloads the tests pickle."""

from __future__ import annotations

import builtins
import os
import subprocess
import time
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin


class SleepyRegressor(RegressorMixin, BaseEstimator):
    """Sleeps as many seconds as the first value of the batch says (``seconds`` when it is not
    positive, so that the warm-up sees a slow model), then predicts zeros."""

    def __init__(self, seconds: float = 0.5) -> None:
        self.seconds = seconds

    def fit(self, x: Any, y: Any) -> SleepyRegressor:
        self.n_features_in_ = np.asarray(x).shape[1]
        return self

    def predict(self, x: Any) -> Any:
        first = float(np.asarray(x)[0, 0])
        time.sleep(first if first > 0 else self.seconds)
        return np.zeros(len(x))


class SlowStartExpander(RegressorMixin, BaseEstimator):
    """Slow on its first call in a process only (as a model paying one-time set-up is), then
    quick; every call works on a float64 copy 500 times as wide as its input."""

    def fit(self, x: Any, y: Any) -> SlowStartExpander:
        self.n_features_in_ = np.asarray(x).shape[1]
        return self

    def predict(self, x: Any) -> Any:
        if not getattr(self, "started_", False):
            self.started_ = True
            time.sleep(0.02)
        wide = np.repeat(np.asarray(x, dtype=np.float64), 500, axis=1)
        return wide.sum(axis=1)


class RaisingRegressor(RegressorMixin, BaseEstimator):
    """Raises on a batch whose first value is negative; predicts its first column otherwise."""

    def fit(self, x: Any, y: Any) -> RaisingRegressor:
        self.n_features_in_ = np.asarray(x).shape[1]
        return self

    def predict(self, x: Any) -> Any:
        x = np.asarray(x)
        if x[0, 0] < 0:
            raise ArithmeticError("negative input: the model's own failure")
        return x[:, 0]


class Payload:
    """Unpickling this creates ``marker``: proof that the file ran code. ``how`` picks the callable."""

    def __init__(self, marker: str, how: str = "os.system") -> None:
        self.marker, self.how = marker, how

    def __reduce__(self) -> tuple[Any, ...]:
        if self.how == "os.system":
            return (os.system, (f"touch {self.marker}",))
        if self.how == "builtins.exec":
            return (builtins.exec, (f"open({self.marker!r}, 'w').close()",))
        if self.how == "subprocess.call":
            return (subprocess.call, (["touch", self.marker],))
        raise ValueError(self.how)
