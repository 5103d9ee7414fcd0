"""`serveml build --optimize onnx` on real models: real converters, parity on a sample from the
contract, and the converted model serving what the original serves."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

from builder.build import summary
from builder.check import check_model
from builder.context import sha256_of
from builder.optimize import (
    DEFAULT_TOLERANCE,
    SAMPLE_ROWS,
    Conversion,
    OptimizeError,
    Tolerance,
    compare,
    convert_to_onnx,
    sample_inputs,
)
from runtime.context import LocalContext
from runtime.contract import Contract
from runtime.manifest import MANIFEST_NAME, read_manifest
from runtime.service import Service, load_service
from tests.functional.conftest import LABELS, write_iris
from tests.functional.test_build import run
from tests.modelzoo import ZooModel, write_manifest
from tests.modelzoo import build as build_model

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]

CONVERTIBLE = {
    "sklearn-joblib": "skl2onnx",
    "sklearn-regressor": "skl2onnx",
    "torchscript": "torch.onnx (TorchScript exporter)",
    "torch-export": "torch.onnx (dynamo exporter)",
    "keras": "keras.export + tf2onnx",
    "h5": "keras.export + tf2onnx",
    "savedmodel": "tf2onnx",
}


def contract_of(model: Path) -> Contract:
    """The contract the build passes on: what the clean-process check reports."""
    report = check_model(model)
    return Contract.from_json(report["contract"]["inputs"], source="model")


def ask(service: Service, request: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(service.handle(request, LocalContext()))
    assert "error" not in body, body
    return body


def assert_same_answer(original: dict[str, Any], converted: dict[str, Any], tolerance: Tolerance) -> None:
    """Equal keys, equal labels, numbers within the tolerance (the model's framework aside)."""
    assert converted.pop("model")["framework"] == "onnx"
    original.pop("model")
    assert set(converted) == set(original)
    for key, want in original.items():
        got = converted[key]
        if isinstance(want, list) and want and isinstance(np.asarray(want).flat[0], float):
            np.testing.assert_allclose(got, want, rtol=tolerance.rtol, atol=tolerance.atol)
        else:
            assert got == want, key


@pytest.fixture(scope="module", params=list(CONVERTIBLE))
def converted(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, ZooModel, Conversion]:
    """GIVEN a zoo model WHEN it is converted to ONNX (in a fresh process)."""
    kind = request.param
    directory = tmp_path_factory.mktemp(kind)
    zoo = build_model(kind, directory / "original")
    if kind == "sklearn-joblib":
        write_manifest(zoo.path.parent, labels=LABELS)
    # The contract as the runtime reads it (model, else manifest), as the build's check reports it.
    contract = Contract.of(load_service(zoo.path).contract.inputs, source="model")
    conversion = convert_to_onnx(zoo.path, zoo.framework, contract, directory / "onnx")
    return kind, zoo, conversion


@pytest.mark.slow
def test_the_converted_model_passed_parity_and_keeps_a_dynamic_batch(
    converted: tuple[str, ZooModel, Conversion],
) -> None:
    kind, zoo, conversion = converted
    assert conversion.onnx_path.is_file()
    assert conversion.framework == zoo.framework
    assert conversion.converter == CONVERTIBLE[kind]
    assert conversion.converter_version
    assert conversion.sample_rows == SAMPLE_ROWS
    assert conversion.tolerance == DEFAULT_TOLERANCE
    assert 0 <= conversion.max_abs_diff <= DEFAULT_TOLERANCE.atol
    graph = onnx.load(str(conversion.onnx_path)).graph
    for value in graph.input:
        batch = value.type.tensor_type.shape.dim[0]
        assert not batch.HasField("dim_value"), f"{value.name}: fixed batch size {batch.dim_value}"
    if kind == "sklearn-regressor":  # one value per row, as scikit-learn gives it, not skl2onnx's [N, 1]
        assert [o.name for o in graph.output] == ["predictions"]
        assert len(graph.output[0].type.tensor_type.shape.dim) == 1


@pytest.mark.slow
def test_the_converted_model_serves_what_the_original_serves(
    converted: tuple[str, ZooModel, Conversion], tmp_path: Path
) -> None:
    _, zoo, conversion = converted
    manifest_path = zoo.path.parent / MANIFEST_NAME
    user = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    served = tmp_path / "served"
    served.mkdir()
    (served / "model.onnx").write_bytes(conversion.onnx_path.read_bytes())
    write_manifest(served, **{k: v for k, v in user.items() if k != "trusted"})
    original, onnx_service = load_service(zoo.path), load_service(served)
    assert onnx_service.adapter.name == "onnx"
    assert onnx_service.contract.to_json()["inputs"] == original.contract.to_json()["inputs"]

    requests: list[dict[str, Any]] = [{"data": zoo.rows}, {"data": zoo.rows[0]}]
    if (
        zoo.framework == "sklearn"
        and hasattr(original.adapter, "model")
        and hasattr(original.adapter.model, "classes_")
    ):
        requests.append({"data": zoo.rows, "probabilities": True})
    for request in requests:
        assert_same_answer(ask(original, request), ask(onnx_service, request), DEFAULT_TOLERANCE)

    (spec,) = original.contract.inputs
    v2 = {"inputs": [{"name": spec.name, "shape": [len(zoo.rows), len(zoo.rows[0])], "datatype": "FP32"}]}
    v2["inputs"][0]["data"] = [value for row in zoo.rows for value in row]
    names = [output["name"] for output in ask(original, v2)["outputs"]]
    assert [output["name"] for output in ask(onnx_service, v2)["outputs"]] == names


@pytest.mark.slow
def test_a_parity_failure_keeps_the_original_and_says_why(tmp_path: Path, iris_dir: Path) -> None:
    # skl2onnx's softmax differs from scikit-learn's in the last bits: no tolerance at all fails it.
    result, lines = run(tmp_path, iris_dir, optimize="onnx", tolerance=Tolerance(rtol=0.0, atol=0.0))

    assert result.framework == "sklearn"
    assert result.converted_from is None
    step = next(line for line in lines if "Converting to ONNX" in line)
    assert step.startswith("[5/8] Converting to ONNX ... kept the original: parity failed: max abs diff ")
    assert f"> tolerance 0 (atol 0 + rtol 0 x |original|) in 'probabilities' on {SAMPLE_ROWS} sample rows" in step
    text = summary(result, None)
    assert "note: --optimize onnx kept the original sklearn model: parity failed: max abs diff" in text
    assert (result.out / "model" / "model.joblib").is_file()
    assert not (result.out / "model" / "model.onnx").exists()
    assert "scikit-learn==" in result.requirements
    assert "onnxruntime" not in result.requirements
    assert "converted_from" not in json.loads((result.out / "model" / MANIFEST_NAME).read_text())


@pytest.mark.slow
def test_an_estimator_skl2onnx_cannot_convert_keeps_the_original_with_the_reason(tmp_path: Path) -> None:
    zoo = build_model("sklearn-unconvertible", tmp_path / "model")

    result, lines = run(tmp_path, zoo.path, optimize="onnx")

    assert result.framework == "sklearn"
    step = next(line for line in lines if "Converting to ONNX" in line)
    assert "kept the original: no converter for this estimator: skl2onnx 1.20.0" in step
    assert "FunctionTransformer is not supported" in step
    assert [line.split("]")[0] for line in lines] == [f"[{i}/8" for i in range(1, 9)]
    assert any("--optimize onnx kept the original sklearn model: no converter" in note for note in result.notes)


def test_a_model_without_input_shapes_is_not_converted(tmp_path: Path) -> None:
    zoo = build_model("torchscript", tmp_path)
    (tmp_path / MANIFEST_NAME).unlink()  # TorchScript carries no input spec of its own
    with pytest.raises(OptimizeError, match=r"does not say its input shapes.*inputs in serveml\.json"):
        convert_to_onnx(zoo.path, "pytorch", Contract.unknown(), tmp_path / "onnx")


def test_a_dataframe_pipeline_is_not_converted(tmp_path: Path) -> None:
    zoo = build_model("sklearn-dataframe", tmp_path)
    contract = contract_of(zoo.path)
    with pytest.raises(OptimizeError, match=r"string inputs \(colour\) are not converted"):
        convert_to_onnx(zoo.path, "sklearn", contract, tmp_path / "onnx")


def test_the_parity_sample_is_seeded_and_follows_the_contract() -> None:
    contract = Contract.from_json(
        [
            {"name": "x", "dtype": "float32", "shape": [-1, 2, 3]},
            {"name": "ids", "dtype": "int64", "shape": [-1, 5]},
            {"name": "mask", "dtype": "bool", "shape": [-1, -1]},
        ]
    )
    first, again = sample_inputs(contract), sample_inputs(contract)
    assert {k: (v.shape, v.dtype.name) for k, v in first.items()} == {
        "x": ((SAMPLE_ROWS, 2, 3), "float32"),
        "ids": ((SAMPLE_ROWS, 5), "int64"),
        "mask": ((SAMPLE_ROWS, 2), "bool"),
    }
    for name in first:
        np.testing.assert_array_equal(first[name], again[name])
    assert first["x"].std() > 0.5


def test_compare_takes_numbers_within_the_tolerance_and_labels_only_when_equal() -> None:
    tolerance = Tolerance(rtol=1e-3, atol=1e-6)
    want = {"predictions": np.array([1.0, 100.0])}
    assert compare(want, {"predictions": np.array([1.0 + 5e-4, 100.05])}, tolerance, 2) == pytest.approx(0.05)
    with pytest.raises(OptimizeError, match=r"max abs diff 0.2 > tolerance 0.1 .* in 'predictions' on 2 sample rows"):
        compare(want, {"predictions": np.array([1.0, 100.2])}, tolerance, 2)
    with pytest.raises(OptimizeError, match=r"1 of 3 values of 'label' differ on 3 sample rows \(first: 2 became 1\)"):
        compare({"label": np.array([0, 1, 2])}, {"label": np.array([0, 1, 1])}, tolerance, 3)
    with pytest.raises(OptimizeError, match=r"output 'predictions' has shape \[2, 1\], the original \[2\]"):
        compare(want, {"predictions": want["predictions"].reshape(2, 1)}, tolerance, 2)


def test_the_help_states_the_default_tolerance() -> None:
    done = subprocess.run(
        [str(BIN / "serveml"), "build", "--help"], capture_output=True, text=True, timeout=60, check=True
    )
    assert str(DEFAULT_TOLERANCE) in " ".join(done.stdout.split())


@pytest.mark.slow
def test_serveml_build_optimize_onnx_end_to_end(tmp_path: Path) -> None:
    # GIVEN the iris classifier with its labels
    model = write_iris(tmp_path / "iris")
    out = tmp_path / "context"

    # WHEN `serveml build --optimize onnx` runs
    done = subprocess.run(
        [str(BIN / "serveml"), "build", str(model), "--out", str(out), "--optimize", "onnx"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    # THEN the context serves the ONNX model with onnxruntime alone, and says where it came from
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split("]")[0] for line in lines if line.startswith("[")] == [f"[{i}/8" for i in range(1, 9)]
    step = next(line for line in lines if "Converting to ONNX" in line)
    assert step.startswith("[5/8] Converting to ONNX ... model.onnx by skl2onnx 1.20.0: max abs diff ")
    assert f"(tolerance {DEFAULT_TOLERANCE}), validated in a fresh interpreter" in step
    assert "for a onnx model (onnxruntime " in done.stdout
    assert "converted from the sklearn model model.joblib by skl2onnx 1.20.0" in done.stdout
    assert sorted(p.name for p in (out / "frameworks").iterdir()) == [
        "__init__.py", "base.py", "detect.py", "onnx.py", "py.typed"
    ]  # fmt: skip
    names = {line.split("==")[0] for line in (out / "requirements.txt").read_text().splitlines()[1:]}
    assert names == {"aws-lambda-powertools", "numpy", "onnxruntime", "orjson"}
    wheels = {p.name.split("-")[0] for p in (out / "wheelhouse").iterdir()}
    assert "onnxruntime" in wheels
    assert not wheels & {"scikit_learn", "scipy", "joblib", "torch", "tensorflow_cpu", "skl2onnx", "onnx"}
    manifest = read_manifest(out / "model" / MANIFEST_NAME)
    assert manifest.framework == "onnx"
    assert manifest.model_file == "model.onnx"
    assert manifest.sha256 == sha256_of(out / "model" / "model.onnx")
    assert manifest.converted_from is not None
    assert manifest.converted_from["sha256"] == sha256_of(model / "model.joblib")
    assert manifest.converted_from["framework"] == "sklearn"
    assert manifest.converted_from["tolerance"] == {"rtol": DEFAULT_TOLERANCE.rtol, "atol": DEFAULT_TOLERANCE.atol}

    # AND in a fresh interpreter it answers like the original, without importing scikit-learn
    script = (
        "import json, sys\n"
        "from runtime.service import load_service\n"
        "from runtime.context import LocalContext\n"
        "service = load_service(sys.argv[1])\n"
        "body = json.loads(service.handle({'data': [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]],"
        " 'probabilities': True}, LocalContext()))\n"
        "print(json.dumps({'body': body, 'sklearn': 'sklearn' in sys.modules}))\n"
    )
    served = subprocess.run(
        [sys.executable, "-c", script, str(out / "model")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    answer = json.loads(served.stdout.splitlines()[-1])
    assert answer["sklearn"] is False
    body = answer["body"]
    assert body["predictions"] == ["setosa", "virginica"]
    assert body["classes"] == ["setosa", "versicolor", "virginica"]
    assert "outputs" not in body
    np.testing.assert_allclose(np.sum(body["probabilities"], axis=1), 1.0, rtol=1e-9)
    assert body["model"]["framework"] == "onnx"


def test_an_onnx_model_whose_classes_metadata_is_not_a_json_list_fails_to_load_saying_so(tmp_path: Path) -> None:
    from onnx import TensorProto, helper

    from frameworks import LoadOptions, adapter_class
    from runtime.errors import ModelLoadFailed

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "identity",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for value, words in [("setosa", "is not JSON"), ('{"0": "setosa"}', "must be a JSON list")]:
        helper.set_model_props(model, {"serveml.classes": value})
        path = tmp_path / "model.onnx"
        onnx.save(model, str(path))
        with pytest.raises(ModelLoadFailed, match=f"metadata serveml.classes {words}"):
            adapter_class("onnx")(path, LoadOptions())
