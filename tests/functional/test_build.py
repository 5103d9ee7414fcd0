"""`serveml build` on real models: the context it writes, and the guide's refusals."""

from __future__ import annotations

import json
import os
import pickle

import pytest

from builder.build import BuildError, BuildOptions, build, summary
from builder.context import sha256_of
from tests.functional.conftest import write_iris
from tests.modelzoo import build as build_model


def run(tmp_path, model, **options):
    lines: list[str] = []
    result = build(BuildOptions(model=model, out=tmp_path / "context", **options), echo=lines.append)
    return result, lines


@pytest.fixture(scope="module")
def iris_context(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("build")
    model = write_iris(tmp / "iris")
    return (*run(tmp, model), model)


def test_a_sklearn_context_holds_only_what_its_image_needs(iris_context):
    result, _lines, _model = iris_context
    out = result.out
    assert {p.name for p in out.iterdir()} == {
        "Dockerfile", "requirements.txt", "wheelhouse", "runtime", "frameworks", "model", "sam-resource.yaml"
    }  # fmt: skip
    assert sorted(p.name for p in (out / "frameworks").iterdir()) == [
        "__init__.py", "base.py", "detect.py", "py.typed", "sklearn.py"
    ]  # fmt: skip
    pins = (out / "requirements.txt").read_text().splitlines()[1:]
    assert all("==" in line for line in pins)
    names = {line.split("==")[0] for line in pins}
    assert names == {"aws-lambda-powertools", "joblib", "numpy", "orjson", "scikit-learn"}
    wheels = {p.name.split("-")[0] for p in (out / "wheelhouse").iterdir()}
    assert {"numpy", "scikit_learn", "scipy", "orjson"} <= wheels
    assert not wheels & {"torch", "tensorflow_cpu", "onnxruntime", "pandas"}


def test_the_manifest_carries_the_hash_contract_and_versions(iris_context):
    result, _, model = iris_context
    manifest = json.loads((result.out / "model" / "serveml.json").read_text())
    assert manifest["sha256"] == sha256_of(model / "model.joblib") == sha256_of(result.out / "model" / "model.joblib")
    assert manifest["framework"] == "sklearn"
    assert manifest["inputs"] == [{"name": "input", "dtype": "float64", "shape": [-1, 4]}]
    assert manifest["versions"]["scikit-learn"]
    assert manifest["labels"]["0"] == "setosa"


def test_progress_is_one_line_per_step_and_the_summary_says_what_to_run(iris_context):
    result, lines, _ = iris_context
    assert [line.split("]")[0] for line in lines] == [f"[{i}/7" for i in range(1, 8)]
    assert "predicted" in lines[3]
    text = summary(result, None)
    assert "docker build --network host -t serveml-iris:1.2.3" in text
    assert "PackageType: Image" in text
    assert (result.out / "sam-resource.yaml").read_text() == result.sam_resource


def test_files_are_readable_by_lambdas_user(iris_context):
    result, _, _ = iris_context
    for path in result.out.rglob("*"):
        assert path.stat().st_mode & 0o004, path


def test_a_model_that_does_not_load_fails_validation_with_the_loaders_error(tmp_path):
    model = tmp_path / "model.pkl"
    model.write_bytes(pickle.dumps({"weights": [1.0, 2.0]}))
    with pytest.raises(BuildError, match=r"^Model validation failed: MODEL_LOAD_FAILED: .*has no predict method"):
        run(tmp_path, model)


def test_a_file_that_is_not_a_pickle_fails_validation(tmp_path):
    model = tmp_path / "model.joblib"
    model.write_bytes(b"\x80\x04\x95garbage")
    with pytest.raises(BuildError, match=r"^Model validation failed: model.joblib is not a readable pickle"):
        run(tmp_path, model)


def test_an_unknown_file_is_an_unsupported_framework(tmp_path):
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF\x03\x00weights")
    with pytest.raises(BuildError, match=r"^Unsupported framework: cannot tell the framework of model.gguf"):
        run(tmp_path, model)


def test_a_file_over_the_limit_is_too_large_with_sizes_and_limit(tmp_path):
    model = write_iris(tmp_path / "iris") / "model.joblib"
    with pytest.raises(BuildError, match=r"^File too large: model.joblib is [\d.]+ MB.*the limit is 0 MB"):
        run(tmp_path, model, max_size_mb=0.0001)


def test_a_pickle_that_would_run_code_is_refused_and_never_loaded(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    model = tmp_path / "model.pkl"
    model.write_bytes(pickle.dumps(Payload()))
    with pytest.raises(BuildError, match=r"^Refusing model.pkl: loading it would import (posix|os)\.system.*--trust"):
        run(tmp_path, model)
    assert not marker.exists()


def test_user_requirements_are_merged_and_clashes_reported(tmp_path, iris_dir):
    extra = tmp_path / "requirements.txt"
    extra.write_text("jmespath>=1.0\n")
    result, _ = run(tmp_path, iris_dir, requirements=extra)
    assert "jmespath>=1.0" in result.requirements
    extra.write_text("numpy<2\n")
    with pytest.raises(BuildError, match=r"numpy<2 \(line 1\) conflicts with the pin numpy==2.4.6"):
        run(tmp_path, iris_dir, requirements=extra)


def test_onnx_and_dataframe_models_get_their_own_pins(tmp_path):
    onnx = build_model("onnx", tmp_path / "onnx")
    result, _ = run(tmp_path / "a", onnx.path)
    assert "onnxruntime==" in result.requirements
    assert "scikit-learn" not in result.requirements
    frame = build_model("sklearn-dataframe", tmp_path / "frame")
    result, _ = run(tmp_path / "b", frame.path)
    assert "pandas==" in result.requirements
