"""The pickle scan: hostile files built here are refused by name, and nothing in them runs."""

from __future__ import annotations

import gzip
import os
import pickle

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from builder.scan import is_allowed, is_pickle_based, scan


class MarkerPayload:
    """Unpickling this would create the marker file: proof that code ran."""

    def __init__(self, marker: str, call: object = os.system) -> None:
        self.marker, self.call = marker, call

    def __reduce__(self):
        if self.call is os.system:
            return (os.system, (f"touch {self.marker}",))
        return (self.call, (f"open({self.marker!r}, 'w').close()",))


@pytest.fixture(scope="module")
def forest():
    x, y = load_iris(return_X_y=True)
    return RandomForestClassifier(n_estimators=3, random_state=0).fit(x, y)


@pytest.mark.parametrize("compress", [0, 3, ("gzip", 3), ("xz", 3), ("bz2", 3)])
def test_real_joblib_models_scan_clean_whatever_the_compression(tmp_path, forest, compress):
    path = tmp_path / "model.joblib"
    joblib.dump(forest, path, compress=compress)
    report = scan(path)
    assert report.safe
    assert "sklearn.ensemble._forest.RandomForestClassifier" in report.globals


def test_plain_and_gzipped_pickles_scan_clean(tmp_path):
    x, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=300).fit(x, y)
    (tmp_path / "a.pkl").write_bytes(pickle.dumps(model, protocol=2))
    with gzip.open(tmp_path / "b.pkl.gz", "wb") as handle:
        pickle.dump(model, handle)
    assert scan(tmp_path / "a.pkl").safe
    assert scan(tmp_path / "b.pkl.gz").safe


@pytest.mark.parametrize("where", ["joblib-after-arrays", "joblib-object-array", "pickle", "gzip", "torch"])
def test_hostile_files_are_refused_naming_the_global_and_nothing_runs(tmp_path, forest, where):
    marker = tmp_path / "pwned"
    payload = MarkerPayload(str(marker))
    path = tmp_path / "model.bin"
    if where == "joblib-after-arrays":
        joblib.dump({"model": forest, "weights": np.arange(1000.0), "hook": payload}, path)
    elif where == "joblib-object-array":
        joblib.dump({"model": forest, "cells": np.array([payload, None], dtype=object)}, path)
    elif where == "pickle":
        path.write_bytes(pickle.dumps([forest, MarkerPayload(str(marker), eval)], protocol=4))
    elif where == "gzip":
        path.write_bytes(gzip.compress(pickle.dumps(payload)))
    else:
        torch = pytest.importorskip("torch")
        torch.save({"state": torch.zeros(3), "hook": payload}, path)
    report = scan(path)
    assert not report.safe
    refused = {f"{f.module}.{f.name}" for f in report.refused}
    assert refused & {"posix.system", "os.system", "builtins.eval"}
    assert not marker.exists()


@pytest.mark.parametrize(
    ("module", "name", "allowed"),
    [
        ("sklearn.linear_model._logistic", "LogisticRegression", True),
        ("numpy", "dtype", True),
        ("builtins", "set", True),
        ("builtins", "eval", False),
        ("builtins", "getattr", False),
        ("posix", "system", False),
        ("subprocess", "Popen", False),
        ("sklearnx", "Evil", False),
        ("__main__", "MyModel", False),
    ],
)
def test_allow_list(module, name, allowed):
    assert is_allowed(module, name) is allowed


def test_only_pickle_based_files_are_scanned(tmp_path):
    (tmp_path / "m.onnx").write_bytes(b"\x08\x07onnx")
    (tmp_path / "m.joblib").write_bytes(b"\x80\x05")
    assert not is_pickle_based(tmp_path / "m.onnx")
    assert is_pickle_based(tmp_path / "m.joblib")


@pytest.mark.parametrize(
    ("kind", "scanned"), [("torchscript", False), ("torch-export", False), ("torch-pickled", True)]
)
def test_torch_archives_are_scanned_only_when_pickle_loads_them(tmp_path, kind, scanned):
    from tests.modelzoo import build

    zoo = build(kind, tmp_path)
    assert is_pickle_based(zoo.path) is scanned
