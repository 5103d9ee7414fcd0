"""serveml.json is read strictly."""

from __future__ import annotations

import pytest

from runtime.errors import InvalidManifest
from runtime.manifest import parse_manifest, read_manifest


def test_a_full_manifest_is_read():
    manifest = parse_manifest(
        {
            "name": "iris",
            "framework": "sklearn",
            "model_file": "model.joblib",
            "version": 3,
            "training_date": "2026-01-15",
            "metrics": {"accuracy": 0.95},
            "labels": ["setosa", "versicolor", "virginica"],
            "inputs": [{"name": "x", "dtype": "float", "shape": [-1, 4]}],
            "allow_nan": True,
            "max_batch_rows": 500,
            "trusted": False,
        }
    )
    assert manifest.version == "3"
    assert manifest.labels == {"0": "setosa", "1": "versicolor", "2": "virginica"}
    assert manifest.contract is not None
    assert manifest.contract.inputs[0].dtype == "float64"
    assert manifest.max_batch_rows == 500


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ([], "must hold a JSON object"),
        ({"trusted": "yes"}, "'trusted' must be bool"),
        ({"max_batch_rows": 0}, "at least 1"),
        ({"inputs": []}, "at least one input"),
        ({"inputs": [{"name": "x", "dtype": "float32", "shape": [-1, 0]}]}, "sizes >= 1"),
    ],
)
def test_wrong_manifests_say_what_is_wrong(raw, words):
    with pytest.raises(InvalidManifest, match=words):
        parse_manifest(raw)


def test_a_manifest_that_is_not_json_is_invalid(tmp_path):
    path = tmp_path / "serveml.json"
    path.write_text("{framework: sklearn}")
    with pytest.raises(InvalidManifest, match="not valid JSON"):
        read_manifest(path)


CONVERTED_FROM = {
    "framework": "sklearn",
    "file": "model.joblib",
    "sha256": "ab" * 32,
    "converter": "skl2onnx 1.20.0",
    "max_abs_diff": 4.3e-19,
    "tolerance": {"rtol": 1e-4, "atol": 1e-5},
    "sample_rows": 64,
}


def test_converted_from_records_what_an_onnx_model_was_built_from():
    manifest = parse_manifest({"framework": "onnx", "converted_from": CONVERTED_FROM})
    assert manifest.converted_from == CONVERTED_FROM
    assert parse_manifest({"framework": "onnx"}).converted_from is None


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"converter_version": "1"}, r"converted_from: unknown field\(s\) converter_version"),
        ({"framework": None}, "converted_from is missing 'framework'"),
        ({"max_abs_diff": "0.1"}, "converted_from.max_abs_diff must be float or int, got str"),
        ({"sample_rows": True}, "converted_from.sample_rows must be int, got bool"),
        ({"tolerance": {"rtol": 1e-4}}, "must hold exactly rtol and atol, both numbers; wrong: atol"),
        ({"tolerance": {"rtol": 1e-4, "atol": "0"}}, "wrong: atol"),
    ],
)
def test_a_wrong_converted_from_says_which_field(change, words):
    entry = {k: v for k, v in {**CONVERTED_FROM, **change}.items() if v is not None}
    with pytest.raises(InvalidManifest, match=words):
        parse_manifest({"converted_from": entry})
