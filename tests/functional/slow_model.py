"""A scikit-learn-compatible estimator that takes its time: the slow model of the TIMEOUT tests.
It lives in an importable module so that joblib can load the pickled model."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin


class SlowClassifier(ClassifierMixin, BaseEstimator):
    def __init__(self, seconds: float = 1.0) -> None:
        self.seconds = seconds

    def fit(self, x: Any, y: Any) -> SlowClassifier:
        self.n_features_in_ = np.asarray(x).shape[1]
        self.classes_ = np.unique(y)
        return self

    def predict(self, x: Any) -> Any:
        time.sleep(self.seconds)
        return np.zeros(len(x), dtype=np.int64)
