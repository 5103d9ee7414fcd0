"""The image's pins: one framework's packages, scikit-learn at the pickle's version, user merges."""

from __future__ import annotations

import joblib
import pytest
import sklearn
from sklearn.linear_model import LogisticRegression

from builder.requirements import RequirementsError, image_requirements, merge_user_requirements, sklearn_version_of


def names(requirements):
    return set(requirements.pins)


def test_each_framework_gets_the_runtime_and_only_its_own_packages():
    runtime = {"numpy", "orjson", "aws-lambda-powertools"}
    assert names(image_requirements("onnx")) == runtime | {"onnxruntime"}
    assert names(image_requirements("tensorflow")) == runtime | {"tensorflow-cpu"}
    assert names(image_requirements("sklearn")) == runtime | {"scikit-learn", "joblib"}
    assert names(image_requirements("sklearn", needs={"tabular", "skops"})) == runtime | {
        "scikit-learn", "joblib", "pandas", "skops"
    }  # fmt: skip
    assert "awslambdaric" not in names(image_requirements("onnx"))  # the base image has it


def test_every_pin_is_exact_and_torch_is_the_cpu_build():
    for framework in ("sklearn", "pytorch", "tensorflow", "onnx"):
        for pin in image_requirements(framework).pins.values():
            assert [spec.operator for spec in pin.specifier] == ["=="], pin
    assert image_requirements("pytorch").version("torch").endswith("+cpu")


@pytest.mark.parametrize("compress", [0, 3, ("gzip", 3)])
def test_the_sklearn_version_is_read_from_the_pickle_without_loading_it(tmp_path, compress):
    path = tmp_path / "model.joblib"
    joblib.dump(LogisticRegression().fit([[0.0], [1.0]], [0, 1]), path, compress=compress)
    assert sklearn_version_of(path) == sklearn.__version__


def test_a_model_pickled_by_another_sklearn_is_pinned_to_that_version():
    result = image_requirements("sklearn", sklearn_version="1.5.2")
    assert result.version("scikit-learn") == "1.5.2"
    assert "the version that pickled the model" in result.notes[0]


def test_user_requirements_merge_and_clash(tmp_path):
    extra = tmp_path / "requirements.txt"
    extra.write_text("# comment\nrequests==2.32.3\nnumpy>=2\n")
    merged = merge_user_requirements(image_requirements("onnx"), extra)
    assert str(merged.pins["requests"]) == "requests==2.32.3"
    assert any("numpy>=2" in note for note in merged.notes)
    extra.write_text("onnxruntime==1.0.0\n")
    with pytest.raises(RequirementsError, match=r"onnxruntime==1\.0\.0 \(line 1\) conflicts with the pin"):
        merge_user_requirements(image_requirements("onnx"), extra)
    extra.write_text("--index-url https://example.invalid\n")
    with pytest.raises(RequirementsError, match="pip options"):
        merge_user_requirements(image_requirements("onnx"), extra)
