"""One contract every framework adapter keeps, run against real tiny models of every format.

``AdapterContract`` holds the tests; each framework has one small subclass naming its zoo kinds
(and adding tests only that framework needs). A new framework adds one subclass.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from frameworks import adapter_class
from frameworks.base import Adapter, LoadOptions
from frameworks.detect import detect_framework
from runtime.contract import Contract
from runtime.errors import InvalidInput, ModelLoadFailed
from runtime.manifest import MANIFEST_NAME, read_manifest
from tests.modelzoo import KINDS, ZooModel, build

REPO = Path(__file__).resolve().parents[2]

_IRIS = [("input", "float64", (-1, 4))]
_FLOAT32_IRIS = [("input", "float32", (-1, 4))]

#: The contract each adapter must read off its zoo model; None where the format carries none.
EXPECTED_INPUTS: dict[str, list[tuple[str, str, tuple[int, ...]]] | None] = {
    "sklearn-joblib": _IRIS,
    "sklearn-pkl": _IRIS,
    "sklearn-pkl-gz": _IRIS,
    "sklearn-skops": _IRIS,
    "sklearn-dataframe": [
        ("sepal_length", "float64", (-1,)),
        ("petal_length", "float64", (-1,)),
        ("colour", "string", (-1,)),
    ],
    "onnx": _FLOAT32_IRIS,
    "onnx-multi-input": [("a", "float32", (-1, 2)), ("b", "float32", (-1, 2))],
    "torchscript": None,
    "torch-export": [("x", "float32", (-1, 4))],
    "torch-pickled": None,
    "keras": _FLOAT32_IRIS,
    "h5": _FLOAT32_IRIS,
    "savedmodel": _FLOAT32_IRIS,
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "kind" in metafunc.fixturenames and metafunc.cls is not None:
        metafunc.parametrize("kind", metafunc.cls.kinds, scope="class")


def options_for(model_path: Path, **overrides: Any) -> LoadOptions:
    """The load options the runtime would use: ``trusted`` comes from the model's manifest."""
    manifest = model_path.parent / MANIFEST_NAME
    trusted = read_manifest(manifest).trusted if manifest.is_file() else False
    return LoadOptions(**{"trusted": trusted, **overrides})


def load(zoo: ZooModel, **overrides: Any) -> Adapter:
    return adapter_class(zoo.framework)(zoo.path, options_for(zoo.path, **overrides))


def contract_for(adapter: Adapter, zoo: ZooModel) -> Contract:
    """The adapter's contract, or the manifest's where the format carries none (as the runtime does)."""
    if adapter.contract is not None:
        return adapter.contract
    contract = read_manifest(zoo.path.parent / MANIFEST_NAME).contract
    assert contract is not None, f"{zoo.path}: the model has no contract and its manifest gives none"
    return contract


def rows_to_inputs(contract: Contract, rows: list[list[Any]]) -> dict[str, np.ndarray[Any, Any]]:
    """Split request rows into named inputs of the contract's dtypes (see tests.modelzoo)."""
    if contract.tabular:
        return {
            spec.name: np.array([row[i] for row in rows], dtype=spec.np_dtype) for i, spec in enumerate(contract.inputs)
        }
    inputs, start = {}, 0
    for spec in contract.inputs:
        size = int(np.prod(spec.row_shape))
        values = [row[start : start + size] for row in rows]
        inputs[spec.name] = np.array(values, dtype=spec.np_dtype).reshape((len(rows), *spec.row_shape))
        start += size
    return inputs


def model_file(path: Path) -> Path:
    """The file holding the model's bytes (a SavedModel's graph for a directory)."""
    return path / "saved_model.pb" if path.is_dir() else path


@pytest.fixture(scope="class")
def zoo(kind: str, tmp_path_factory: pytest.TempPathFactory) -> ZooModel:
    """GIVEN: the zoo model of one kind, built once per suite class."""
    return build(kind, tmp_path_factory.mktemp(kind))


@pytest.fixture(scope="class")
def adapter(zoo: ZooModel) -> Adapter:
    return load(zoo)


class AdapterContract:
    """The tests every adapter passes. Subclasses set the class attributes."""

    framework: ClassVar[str]
    kinds: ClassVar[tuple[str, ...]]
    package: ClassVar[str]
    probability_kinds: ClassVar[frozenset[str]] = frozenset()

    def test_given_a_zoo_model_then_detection_names_its_framework(self, zoo: ZooModel) -> None:
        assert zoo.framework == self.framework
        assert detect_framework(zoo.path) == self.framework

    def test_given_a_zoo_model_when_loaded_then_its_contract_is_read_off_the_model(
        self, kind: str, adapter: Adapter
    ) -> None:
        assert adapter.name == self.framework
        contract = adapter.contract
        found = None if contract is None else [(s.name, s.dtype, s.shape) for s in contract.inputs]
        assert found == EXPECTED_INPUTS[kind]
        if contract is not None:
            assert contract.source == "model"

    def test_given_the_sample_rows_when_predicting_then_outputs_equal_the_frameworks_own(
        self, zoo: ZooModel, adapter: Adapter
    ) -> None:
        contract = contract_for(adapter, zoo)
        assert sum(int(np.prod(s.row_shape)) for s in contract.inputs) == zoo.n_features

        prediction = adapter.predict(rows_to_inputs(contract, zoo.rows))

        assert prediction.outputs, "an adapter returns at least one output"
        assert all(isinstance(v, np.ndarray) for v in prediction.outputs.values())
        primary = next(iter(prediction.outputs.values()))
        assert len(primary) == len(zoo.rows)
        if primary.dtype.kind == "f":
            np.testing.assert_allclose(primary, np.asarray(zoo.expected, dtype=primary.dtype), rtol=1e-5, atol=1e-6)
        else:
            assert primary.tolist() == zoo.expected
        assert prediction.probabilities is None

    def test_given_a_loaded_model_then_versions_name_the_framework_package(self, adapter: Adapter) -> None:
        versions = adapter.versions
        assert versions[self.package]
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in versions.items())

    def test_given_a_request_for_probabilities_then_classifiers_give_them_and_others_refuse(
        self, kind: str, zoo: ZooModel, adapter: Adapter
    ) -> None:
        inputs = rows_to_inputs(contract_for(adapter, zoo), zoo.rows)
        if kind not in self.probability_kinds:
            with pytest.raises(InvalidInput, match="no class probabilities"):
                adapter.predict(inputs, probabilities=True)
            return

        prediction = adapter.predict(inputs, probabilities=True)

        probabilities = prediction.probabilities
        assert probabilities is not None
        assert probabilities.shape == (len(zoo.rows), 3)
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
        assert prediction.classes is not None
        assert len(prediction.classes) == 3
        # The most probable class is the one predicted.
        predicted = [prediction.classes[i] for i in probabilities.argmax(axis=1)]
        assert predicted == zoo.expected

    @pytest.mark.parametrize("damage", ["truncated", "garbage"])
    def test_given_a_damaged_model_file_when_loaded_then_model_load_failed_names_the_path(
        self, zoo: ZooModel, damage: str, tmp_path: Path
    ) -> None:
        copy = tmp_path / zoo.path.parent.name
        shutil.copytree(zoo.path.parent, copy)
        damaged = copy / zoo.path.name
        target = model_file(damaged)
        content = target.read_bytes()
        target.write_bytes(content[: len(content) // 2] if damage == "truncated" else b"\x00garbage\xff" * 64)

        with pytest.raises(ModelLoadFailed) as caught:
            adapter_class(self.framework)(damaged, options_for(damaged))

        assert str(damaged) in caught.value.message
        assert caught.value.message.startswith(f"cannot load {self.framework} model")
        assert caught.value.details["path"] == str(damaged)


class TestSklearn(AdapterContract):
    framework = "sklearn"
    kinds = ("sklearn-joblib", "sklearn-pkl", "sklearn-pkl-gz", "sklearn-skops", "sklearn-dataframe")
    package = "scikit-learn"
    probability_kinds = frozenset(kinds)

    def test_given_an_object_without_predict_when_loaded_then_model_load_failed(self, tmp_path: Path) -> None:
        import joblib

        path = tmp_path / "model.joblib"
        joblib.dump({"weights": [1, 2, 3]}, path)

        with pytest.raises(ModelLoadFailed, match="has no predict method; got dict"):
            adapter_class("sklearn")(path, LoadOptions())

    def test_given_a_skops_file_with_untrusted_types_then_it_loads_only_when_trusted(self, tmp_path: Path) -> None:
        import operator

        import skops.io
        from sklearn.datasets import load_iris
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import FunctionTransformer

        features, target = load_iris(return_X_y=True)
        model = make_pipeline(FunctionTransformer(operator.neg), LogisticRegression(max_iter=500)).fit(features, target)
        path = tmp_path / "model.skops"
        skops.io.dump(model, path)

        with pytest.raises(ModelLoadFailed, match=r"_operator\.neg.*trusted") as caught:
            adapter_class("sklearn")(path, LoadOptions(trusted=False))
        assert caught.value.details["untrusted_types"] == ["_operator.neg"]

        adapter = adapter_class("sklearn")(path, LoadOptions(trusted=True))
        assert (
            adapter.predict({"input": features[:3]}).outputs["predictions"].tolist()
            == model.predict(features[:3]).tolist()
        )


class TestOnnx(AdapterContract):
    framework = "onnx"
    kinds = ("onnx", "onnx-multi-input")
    package = "onnxruntime"
    probability_kinds = frozenset({"onnx"})

    def test_given_a_fresh_process_when_serving_onnx_then_no_other_framework_is_imported(self, tmp_path: Path) -> None:
        zoo = build("onnx", tmp_path)
        script = (
            "import sys\n"
            "from pathlib import Path\n"
            "import numpy as np\n"
            "from frameworks import LoadOptions, adapter_class\n"
            "adapter = adapter_class('onnx')(Path(sys.argv[1]), LoadOptions())\n"
            "adapter.predict({'input': np.ones((2, 4), np.float32)}, probabilities=True)\n"
            "print(sorted(m for m in ('torch', 'tensorflow', 'keras', 'sklearn', 'pandas') if m in sys.modules))\n"
        )

        done = subprocess.run(
            [sys.executable, "-c", script, str(zoo.path)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "[]"


class TestPytorch(AdapterContract):
    framework = "pytorch"
    kinds = ("torchscript", "torch-export", "torch-pickled")
    package = "torch"

    def test_given_a_pickled_module_not_marked_trusted_when_loaded_then_refused_naming_trusted(
        self, tmp_path: Path
    ) -> None:
        zoo = build("torch-pickled", tmp_path)

        with pytest.raises(ModelLoadFailed, match='"trusted": true') as caught:
            adapter_class("pytorch")(zoo.path, LoadOptions(trusted=False))

        assert str(zoo.path) in caught.value.message

    def test_given_a_state_dict_when_loaded_then_refused_as_having_no_architecture(self, tmp_path: Path) -> None:
        import torch

        path = tmp_path / "weights.pt"
        torch.save(torch.nn.Linear(4, 3).state_dict(), path)

        with pytest.raises(ModelLoadFailed, match="state_dict"):
            adapter_class("pytorch")(path, LoadOptions(trusted=True))


class TestTensorflow(AdapterContract):
    framework = "tensorflow"
    kinds = ("keras", "h5", "savedmodel")
    package = "tensorflow"

    @pytest.fixture
    def lambda_model(self, tmp_path: Path, request: pytest.FixtureRequest) -> Path:
        import keras

        model = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Lambda(lambda v: v * 2)])
        path = tmp_path / f"lambda.{request.param}"
        model.save(path)
        return path

    @pytest.mark.parametrize("lambda_model", ["keras", "h5"], indirect=True)
    def test_given_a_lambda_layer_when_loaded_untrusted_then_safe_mode_refuses_it(self, lambda_model: Path) -> None:
        with pytest.raises(ModelLoadFailed, match='"trusted": true'):
            adapter_class("tensorflow")(lambda_model, LoadOptions(trusted=False))

        adapter = adapter_class("tensorflow")(lambda_model, LoadOptions(trusted=True))
        assert adapter.contract is not None
        doubled = adapter.predict({adapter.contract.names[0]: np.ones((2, 4), np.float32)}).outputs["output"]
        np.testing.assert_allclose(doubled, 2.0)

    def test_given_a_savedmodel_without_serving_default_then_model_load_failed_lists_signatures(
        self, tmp_path: Path
    ) -> None:
        import tensorflow as tf

        module = tf.Module()
        module.double = tf.function(lambda x: {"y": x * 2}, input_signature=[tf.TensorSpec([None], tf.float32)])
        tf.saved_model.save(module, str(tmp_path / "sm"), signatures={"doubler": module.double})

        with pytest.raises(ModelLoadFailed, match="no 'serving_default' signature; found: doubler"):
            adapter_class("tensorflow")(tmp_path / "sm", LoadOptions())


def test_given_the_suite_then_every_zoo_kind_is_covered_once() -> None:
    suites = [TestSklearn, TestOnnx, TestPytorch, TestTensorflow]
    covered = [kind for suite in suites for kind in suite.kinds]
    assert sorted(covered) == sorted(KINDS)
    assert set(EXPECTED_INPUTS) == set(KINDS)
