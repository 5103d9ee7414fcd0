"""End to end: ``serveml serve`` runs the real Lambda Runtime Interface Emulator and awslambdaric,
and models of every framework family answer invocations exactly as they would on Lambda."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.e2e.conftest import ROOT, Server, serveml_command
from tests.modelzoo import ZooModel

pytestmark = pytest.mark.e2e

CLI_TIMEOUT_S = 240


def assert_predictions_match(actual: Any, expected: Any) -> None:
    """Equal for labels, close for floats: the model's numbers went through JSON and back."""
    try:
        expected_numbers = np.asarray(expected, dtype=np.float64)
    except (TypeError, ValueError):
        assert actual == expected
        return
    np.testing.assert_allclose(np.asarray(actual, dtype=np.float64), expected_numbers, rtol=1e-5, atol=1e-6)


def run_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*serveml_command(), *args],
        cwd=ROOT,
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )


# -- every framework behind the emulator --------------------------------------------------------


def test_predictions_through_the_emulator_equal_the_models_own(server: Server, zoo: ZooModel) -> None:
    # GIVEN a model of one framework served by the emulator
    # WHEN its sample rows are invoked over HTTP, as `aws lambda invoke` would send them
    answer = server.invoke({"data": zoo.rows})

    # THEN the predictions are the ones the model itself made in-process
    assert answer.status == 200, answer.body
    assert "error" not in answer.body, answer.body
    assert_predictions_match(answer.body["predictions"], zoo.expected)
    assert answer.body["model"]["framework"] == zoo.framework


def test_a_wrong_shape_is_refused_and_the_next_request_is_answered(server: Server, zoo: ZooModel) -> None:
    # GIVEN a served model that takes rows of n_features values
    short_row = [[1.0] * (zoo.n_features - 1)]

    # WHEN a row one value short arrives
    refused = server.invoke({"data": short_row})

    # THEN it is refused with SHAPE_MISMATCH ...
    assert refused.body["error"]["code"] == "SHAPE_MISMATCH", refused.body
    # ... AND the same process answers a good request afterwards
    answer = server.invoke({"data": zoo.rows})
    assert_predictions_match(answer.body["predictions"], zoo.expected)


@pytest.mark.parametrize("zoo", ["sklearn-joblib"], indirect=True)
def test_a_direct_payload_that_is_not_json_is_refused_by_awslambdaric_and_the_process_serves_on(
    server: Server, zoo: ZooModel
) -> None:
    # GIVEN a served model WHEN a direct invocation's payload is not JSON at all
    request = urllib.request.Request(server.url, data=b'{"data": [[5.1, 3.5', method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            body = json.loads(error.read())
    # THEN awslambdaric refuses it before the handler (Lambda does the same) ...
    assert body["errorType"] == "Runtime.UnmarshalError", body
    # ... AND the same runtime process answers the next request
    answer = server.invoke({"data": zoo.rows})
    assert_predictions_match(answer.body["predictions"], zoo.expected)


def test_a_wrong_dtype_is_refused_and_the_next_request_is_answered(server: Server, zoo: ZooModel) -> None:
    # GIVEN a served numeric model
    # WHEN a row carries a string where a number belongs
    refused = server.invoke({"data": [["a", *([1.0] * (zoo.n_features - 1))]]})

    # THEN it is refused with DTYPE_MISMATCH, AND the process keeps serving
    assert refused.body["error"]["code"] == "DTYPE_MISMATCH", refused.body
    answer = server.invoke({"data": zoo.rows})
    assert_predictions_match(answer.body["predictions"], zoo.expected)


def test_warmup_is_answered_without_predicting(server: Server) -> None:
    # GIVEN a served model
    # WHEN a scheduled warm-up ping arrives
    answer = server.invoke({"warmup": True})

    # THEN it reports that the function is warm
    assert answer.status == 200, answer.body
    assert answer.body["warmed"] is True


def test_health_reports_the_framework(server: Server, zoo: ZooModel) -> None:
    # GIVEN a served model
    # WHEN a health check arrives
    answer = server.invoke({"health": True})

    # THEN it reports the loaded model's framework
    assert answer.status == 200, answer.body
    assert answer.body["framework"]["name"] == zoo.framework
    assert answer.body["loaded"] is True


@pytest.mark.parametrize("zoo", ["sklearn-joblib"], indirect=True)
@pytest.mark.usefixtures("lambda_env")
def test_boto3_lambda_client_invokes_through_the_emulator(server: Server, zoo: ZooModel) -> None:
    import boto3
    from botocore.config import Config

    # GIVEN boto3's Lambda client pointed at the emulator, as at Lambda's API
    client = boto3.client(
        "lambda",
        endpoint_url=server.endpoint,
        config=Config(retries={"max_attempts": 1}, read_timeout=240, connect_timeout=10),
    )

    # WHEN the function is invoked with the sample rows
    response = client.invoke(FunctionName="function", Payload=json.dumps({"data": zoo.rows}).encode())

    # THEN Lambda's response carries the predictions and no function error
    assert response["StatusCode"] == 200
    assert "FunctionError" not in response
    body = json.loads(response["Payload"].read())
    assert_predictions_match(body["predictions"], zoo.expected)


# -- a model that cannot load ------------------------------------------------------------------


def test_a_model_that_fails_to_load_returns_the_init_error(tmp_path: Path, start_server: Callable[..., Server]) -> None:
    # GIVEN an .onnx file that is not a model
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"this is not an ONNX model\n")
    server = start_server(broken)

    # WHEN it is invoked (the emulator starts the runtime on the first invoke)
    answer = server.invoke({"data": [[5.1, 3.5, 1.4, 0.2]]})

    # THEN the answer is awslambdaric's init error, naming the code and the file
    assert "errorType" in answer.body, answer.body
    assert "MODEL_LOAD_FAILED" in answer.body["errorMessage"]
    assert str(broken.resolve()) in answer.body["errorMessage"]


# -- the serveml CLI ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def iris_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The README's example model, trained by its own script into a fresh directory."""
    out = tmp_path_factory.mktemp("iris") / "model"
    subprocess.run(
        [sys.executable, str(ROOT / "examples" / "iris" / "train.py"), "--out", str(out)],
        check=True,
        capture_output=True,
        timeout=CLI_TIMEOUT_S,
    )
    return out


def test_serveml_test_answers_one_event_from_a_file(iris_model: Path, tmp_path: Path) -> None:
    # GIVEN the iris example and an event file with one setosa and one virginica flower
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"data": [[5.1, 3.5, 1.4, 0.2], [6.3, 3.3, 6.0, 2.5]]}))

    # WHEN `serveml test` runs it in-process
    result = run_cli("test", "--model", str(iris_model), "--input", str(event))

    # THEN it exits 0 and prints the response with one prediction per row
    assert result.returncode == 0, result.stderr
    response = json.loads(result.stdout)
    assert len(response["predictions"]) == 2
    assert response["model"]["name"] == "iris"


def test_serveml_test_reads_the_event_from_stdin(iris_model: Path) -> None:
    # GIVEN an event on standard input
    # WHEN `serveml test --input -` runs
    result = run_cli("test", "--model", str(iris_model), "--input", "-", stdin='{"health": true}')

    # THEN it answers it
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["framework"]["name"] == "sklearn"


def test_serveml_test_exits_1_with_the_error_code_for_a_bad_request(iris_model: Path, tmp_path: Path) -> None:
    # GIVEN an event whose rows have three values for a four-feature model
    event = tmp_path / "bad.json"
    event.write_text(json.dumps({"data": [[1, 2, 3]]}))

    # WHEN `serveml test` runs it
    result = run_cli("test", "--model", str(iris_model), "--input", str(event))

    # THEN it exits 1 and prints the error envelope with its code
    assert result.returncode == 1
    assert json.loads(result.stdout)["error"]["code"] == "SHAPE_MISMATCH"
    assert result.stderr.splitlines()[-1].startswith("SHAPE_MISMATCH: ")


def test_serveml_test_prints_an_init_error_as_one_line(tmp_path: Path) -> None:
    # GIVEN a model file that cannot load
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"garbage")
    event = tmp_path / "event.json"
    event.write_text('{"data": [[1, 2, 3, 4]]}')

    # WHEN `serveml test` loads it
    result = run_cli("test", "--model", str(broken), "--input", str(event))

    # THEN it exits 1, ending with "CODE: message" (after the runtime's own log lines), and no traceback
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1].startswith("MODEL_LOAD_FAILED: "), result.stderr
    assert str(broken.resolve()) in result.stderr.splitlines()[-1]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", ["serve", "test"])
def test_a_missing_model_is_a_usage_error(command: str, tmp_path: Path) -> None:
    # GIVEN a model path that does not exist
    missing = tmp_path / "nope.joblib"
    event = tmp_path / "event.json"
    event.write_text("{}")
    args = [str(missing)] if command == "serve" else ["--model", str(missing), "--input", str(event)]

    # WHEN serveml is pointed at it
    result = run_cli(command, *args)

    # THEN it exits 2 with one line naming the path, before starting anything
    assert result.returncode == 2
    assert result.stderr.strip() == f"serveml: error: model not found: {missing}"


def test_serveml_version() -> None:
    from serveml import __version__

    result = run_cli("--version")

    assert result.returncode == 0
    assert result.stdout.strip() == f"serveml {__version__}"
