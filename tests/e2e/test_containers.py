"""Proven with a real Docker engine: `serveml build`, then `docker build`, then the image answers
invocations through its emulator on 127.0.0.1 with the model's own predictions; and `sam build` +
`sam local invoke -e events/...` run the model function.

Without an engine these tests skip with the reason; with CI=true a missing engine fails them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.e2e.conftest import IMAGE_SIZES
from tests.e2e.docker_support import base_image, build_image, free_port, image_size_mb, remove_image, run_container
from tests.modelzoo import build as build_model

# image builds (a TensorFlow one installs 1.4 GB) outlast the suite's 300 s default
pytestmark = [pytest.mark.e2e, pytest.mark.docker, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
KINDS = ["sklearn-joblib", "onnx", "torchscript", "keras"]


def serveml_build(model: Path, out: Path, base: str) -> str:
    """The CLI itself, as a user runs it; returns its output."""
    argv = [str(BIN / "serveml"), "build", str(model), "--out", str(out), "--base-image", base]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=1800, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def base():
    return base_image()


@pytest.fixture(scope="module", params=KINDS)
def image(request, base, tmp_path_factory):
    kind = request.param
    tmp = tmp_path_factory.mktemp(kind)
    zoo = build_model(kind, tmp / "model")
    context = tmp / "context"
    output = serveml_build(zoo.path, context, base)
    tag = f"serveml-e2e-{kind}:test"
    build_image(context, tag, build_args={"BASE_IMAGE": base, "FRAMEWORK": zoo.framework})
    IMAGE_SIZES[tag] = image_size_mb(tag)
    IMAGE_SIZES[base] = image_size_mb(base)
    yield zoo, tag, output, context
    remove_image(tag)


def assert_same(got, expected):
    if expected and isinstance(expected[0], str):
        assert got == expected
    else:
        np.testing.assert_allclose(np.asarray(got, dtype=float), np.asarray(expected, dtype=float), rtol=1e-5)


def test_the_image_answers_with_the_models_own_predictions(image):
    zoo, tag, _output, _context = image
    # GIVEN the image `serveml build` and `docker build` made WHEN it runs and is invoked on 127.0.0.1
    with run_container(tag, free_port()) as running:
        answer = running.invoke({"data": zoo.rows})
        # THEN it predicts what the framework itself predicts
        assert answer.status == 200, (answer.body, running.logs())
        assert_same(answer.body["predictions"], zoo.expected)
        # AND a bad request is refused with its code while the container keeps serving
        bad = running.invoke({"data": [["x"] * zoo.n_features]})
        assert bad.body["error"]["code"] == "DTYPE_MISMATCH"
        health = running.invoke({"health": True})
        assert health.body["framework"]["name"] == zoo.framework
        logs = running.logs()
    assert '"message":"init"' in logs.replace(" ", "")


def test_the_image_holds_only_its_own_framework(image):
    zoo, tag, _, context = image
    frameworks = {"sklearn": "sklearn", "pytorch": "torch", "tensorflow": "tensorflow", "onnx": "onnxruntime"}
    others = sorted(set(frameworks.values()) - {frameworks[zoo.framework]})
    probe = f"import importlib.util, json; print(json.dumps([m for m in {others!r} if importlib.util.find_spec(m)]))"
    done = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", "--entrypoint", "python", tag, "-c", probe],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
    adapters = sorted(p.name for p in (context / "frameworks").iterdir())
    assert len([a for a in adapters if a not in {"__init__.py", "base.py", "detect.py", "py.typed"}]) == 1


def test_the_image_runs_as_a_user_that_owns_none_of_its_files(image):
    zoo, tag, _, _ = image
    with run_container(tag, free_port(), docker_args=["--user", "993:990"]) as running:
        answer = running.invoke({"data": zoo.rows})
        assert answer.status == 200, (answer.body, running.logs())


@pytest.fixture(scope="module")
def iris_context(base, tmp_path_factory):
    from tests.functional.conftest import write_iris

    tmp = tmp_path_factory.mktemp("sam")
    model = write_iris(tmp / "iris")
    serveml_build(model, tmp / "context", base)
    return tmp / "context"


def test_sam_build_and_sam_local_invoke_run_the_model_function(base, iris_context, tmp_path):
    if shutil.which("sam", path=str(BIN)) is None:
        pytest.fail("sam is not installed in the virtual environment")
    # GIVEN the project's template, pointed at the build context and the base image
    template = (ROOT / "template.yaml").read_text()
    template = template.replace("DockerContext: .serveml/build", f"DockerContext: {iris_context}")
    template = template.replace('PYTHON_VERSION: "3.11"', f'PYTHON_VERSION: "3.11"\n        BASE_IMAGE: "{base}"')
    (tmp_path / "template.yaml").write_text(template)
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0", "AWS_DEFAULT_REGION": "us-east-1", "DOCKER_BUILDKIT": "0"}
    env |= {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    # WHEN sam builds it and invokes it with sample events
    built = subprocess.run(
        [str(BIN / "sam"), "build", "ModelFunction", "--template-file", "template.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=1800,
        env=env,
        check=False,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    for event, expected in [("direct_data", ["setosa"]), ("apigw_v1", ["setosa", "virginica"])]:
        invoked = subprocess.run(
            [
                str(BIN / "sam"),
                "local",
                "invoke",
                "ModelFunction",
                "-e",
                str(ROOT / "events" / f"{event}.json"),
                "--docker-network",
                "host",
                "--skip-pull-image",
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
            env=env,
            check=False,
        )
        assert invoked.returncode == 0, invoked.stdout + invoked.stderr
        # THEN the function's answer is the model's
        answer = json.loads(invoked.stdout.strip().splitlines()[-1])
        if "statusCode" in answer:
            answer = json.loads(answer["body"])
        assert answer["predictions"] == expected
