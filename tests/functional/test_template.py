"""template.yaml: the model function as a container image, valid for SAM and cfn-lint."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from samcli.yamlhelper import yaml_parse

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
BIN = Path(sys.executable).parent
ENV = {**os.environ, "SAM_CLI_TELEMETRY": "0", "AWS_DEFAULT_REGION": "us-east-1"}


def test_the_model_function_is_an_image_built_from_the_dockerfile():
    template = yaml_parse(TEMPLATE.read_text())
    function = template["Resources"]["ModelFunction"]
    assert function["Properties"]["PackageType"] == "Image"
    assert set(function["Metadata"]) >= {"Dockerfile", "DockerContext", "DockerTag", "DockerBuildArgs"}
    assert (ROOT / function["Metadata"]["Dockerfile"]).is_file()
    assert {"MemorySize", "Timeout", "Architecture"} <= set(template["Parameters"])


@pytest.mark.parametrize(
    "argv",
    [
        [str(BIN / "sam"), "validate", "--lint", "-t", str(TEMPLATE)],
        [str(BIN / "cfn-lint"), str(TEMPLATE)],
    ],
    ids=["sam-validate-lint", "cfn-lint"],
)
def test_the_template_passes_sam_validate_and_cfn_lint(argv):
    done = subprocess.run(argv, capture_output=True, text=True, env=ENV, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
