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


def test_the_control_plane_functions_bucket_and_tables_are_in_the_template():
    resources = yaml_parse(TEMPLATE.read_text())["Resources"]
    handlers = {r["Properties"].get("Handler") for r in resources.values() if r["Type"] == "AWS::Serverless::Function"}
    assert {"controlplane.api.handler", "controlplane.warmer.handler"} <= handlers
    pipeline = resources["PipelineFunction"]
    assert pipeline["Properties"]["PackageType"] == "Image"
    assert {e["Type"] for e in pipeline["Properties"]["Events"].values()} == {"S3", "EventBridgeRule"}
    warmer_events = resources["WarmerFunction"]["Properties"]["Events"]
    assert [e["Type"] for e in warmer_events.values()] == ["Schedule"]
    bucket = resources["ModelBucket"]["Properties"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert bucket["CorsConfiguration"]["CorsRules"][0]["AllowedOrigins"] == [{"Ref": "AllowedOrigin"}]
    gsi = resources["DeploymentsTable"]["Properties"]["GlobalSecondaryIndexes"][0]
    assert gsi["IndexName"] == "owner-index"


def test_no_function_may_do_everything():
    resources = yaml_parse(TEMPLATE.read_text())["Resources"]
    for name, resource in resources.items():
        for policy in resource.get("Properties", {}).get("Policies", []):
            for statement in policy.get("Statement", []) if isinstance(policy, dict) else []:
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                assert not any(a == "*" or a.endswith(":*") for a in actions), (name, actions)
                if statement["Resource"] == "*":
                    assert actions == ["lambda:ListFunctions"], (name, actions)
