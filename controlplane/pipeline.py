"""The build pipeline: handler ``controlplane.pipeline.handler``.

An S3 ObjectCreated event for ``uploads/<owner>/<id>/model/<file>`` (or the deployment's
``requirements.txt``, whichever of the two arrives last) validates the model (the builder's
pickle scan and its load-and-predict check, in a clean subprocess) and starts the CodeBuild
project that makes the image. CodeBuild's "Build State Change" event (EventBridge, to
``handler`` or ``build_handler``) then creates or updates the model function, or fails the
deployment with the reason. Whatever goes wrong, the deployment ends ``failed`` with a readable
reason: never stuck in validating or building. The decisions live in ``lifecycle``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ClientError

from builder.check import CheckFailed, check_model
from builder.scan import is_pickle_based, scan
from controlplane import aws, functions, lifecycle, settings, store

logger = Logger(service="serveml-pipeline")

#: The builder's limit for a model plus its requirements (README: "File too large").
MAX_UPLOAD_BYTES = 250 * 1024 * 1024
#: Loading and predicting once; the pipeline function's timeout must be longer.
CHECK_TIMEOUT_S = 300
MAX_REQUIREMENTS_BYTES = 64 * 1024


def _fail(deployment_id: str, transition: lifecycle.Transition, expected: tuple[str, ...]) -> None:
    store.update_status(deployment_id, "failed", reason=transition.reason, expected=expected)
    logger.warning("deployment failed", deployment_id=deployment_id, reason=transition.reason)


def _size(bucket: str, key: str) -> int | None:
    try:
        return int(aws.client("s3").head_object(Bucket=bucket, Key=key)["ContentLength"])
    except ClientError as error:
        if str(error.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey", "NotFound"):
            return None
        raise


def _size_problem(deployment: store.Deployment, bucket: str) -> str | None:
    model_size = _size(bucket, deployment.model_key)
    if model_size is None:
        return "The model file was not found in the upload bucket"
    requirements_size = 0
    if deployment.requirements_key:
        found = _size(bucket, deployment.requirements_key)
        if found is None:
            return "requirements.txt was requested but is no longer in the upload bucket"
        if found > MAX_REQUIREMENTS_BYTES:
            return f"requirements.txt is {found} bytes; the limit is {MAX_REQUIREMENTS_BYTES}"
        requirements_size = found
    total = model_size + requirements_size
    if total > MAX_UPLOAD_BYTES:
        return (
            f"File too large: the model and requirements are {total / 2**20:.1f} MB; "
            f"the limit is {MAX_UPLOAD_BYTES // 2**20} MB"
        )
    return None


def _model_problem(model: Path) -> str | None:
    # Scan before the check: the check unpickles, and a hostile pickle must never be loaded.
    if is_pickle_based(model):
        try:
            report = scan(model)
        except Exception as error:
            # Whatever the scanner choked on, a file it cannot read is never loaded.
            return f"Model validation failed: {model.name} is not a readable pickle ({type(error).__name__}: {error})"
        if not report.safe:
            refused = ", ".join(sorted({str(finding) for finding in report.refused}))
            return (
                f"Refusing {model.name}: loading it would import {refused}, which can run code; a model never needs it"
            )
    try:
        check_model(model, timeout_s=CHECK_TIMEOUT_S)
    except CheckFailed as error:
        return f"Model validation failed: {error}"
    return None


def validation_problem(deployment: store.Deployment, bucket: str, scratch: Path) -> str | None:
    """Download the uploads into ``scratch`` and check them; the reason they are refused, or None."""
    problem = _size_problem(deployment, bucket)
    if problem:
        return problem
    s3 = aws.client("s3")
    model = scratch / "model" / deployment.model_filename
    model.parent.mkdir(parents=True)
    s3.download_file(bucket, deployment.model_key, str(model))
    if deployment.requirements_key:
        requirements = scratch / "requirements.txt"
        s3.download_file(bucket, deployment.requirements_key, str(requirements))
        try:
            requirements.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            return "requirements.txt is not UTF-8 text"
    return _model_problem(model)


def _start_build(deployment: store.Deployment, bucket: str) -> tuple[str, str]:
    config = settings.current()
    image_uri = f"{config.ecr_repository}:{deployment.id}"
    variables = {
        "DEPLOYMENT_ID": deployment.id,
        "MODEL_BUCKET": bucket,
        "MODEL_KEY": deployment.model_key,
        "REQUIREMENTS_KEY": deployment.requirements_key or "",
        "IMAGE_URI": image_uri,
    }
    started = aws.client("codebuild").start_build(
        projectName=config.codebuild_project,
        environmentVariablesOverride=[
            {"name": name, "value": value, "type": "PLAINTEXT"} for name, value in variables.items()
        ],
    )
    return str(started["build"]["id"]), image_uri


def on_upload(upload: lifecycle.Upload) -> str:
    """Validate an uploaded model and start its image build; the resulting status (or why skipped)."""
    deployment = store.get_deployment(upload.deployment_id)
    if deployment is None or deployment.owner != upload.owner or upload.key not in deployment.upload_keys():
        logger.warning("upload for no known deployment", key=upload.key)
        return "skipped: no such deployment"
    missing = [key for key in deployment.upload_keys() if _size(upload.bucket, key) is None]
    if missing:
        # The other upload's own event starts validation when it lands.
        logger.info("waiting for uploads", deployment_id=deployment.id, missing=missing)
        return "waiting: " + ", ".join(key.rsplit("/", 1)[-1] for key in missing)
    if lifecycle.on_upload(deployment.status) is None or not store.update_status(
        deployment.id, "validating", expected=lifecycle.UPLOAD_FROM
    ):
        logger.info("duplicate upload event", deployment_id=deployment.id, status=deployment.status)
        return f"skipped: already {deployment.status}"
    logger.info("validating", deployment_id=deployment.id, key=upload.key)
    step = "validating the model"
    try:
        with tempfile.TemporaryDirectory(prefix=f"serveml-{deployment.id}-") as scratch:
            outcome = lifecycle.after_validation(validation_problem(deployment, upload.bucket, Path(scratch)))
        if outcome.status == "failed":
            _fail(deployment.id, outcome, ("validating",))
            return "failed"
        step = "starting the image build"
        build_id, image_uri = _start_build(deployment, upload.bucket)
        store.update_status(deployment.id, "building", expected=("validating",), build_id=build_id, image_uri=image_uri)
        logger.info("build started", deployment_id=deployment.id, build_id=build_id)
        return "building"
    except Exception as error:
        # Whatever failed, the deployment must end "failed", never stuck in validating.
        logger.exception("pipeline step failed", deployment_id=deployment.id, step=step)
        _fail(deployment.id, lifecycle.internal_failure(step, error), ("validating",))
        return "failed"


def on_build_state(state: lifecycle.BuildState) -> str:
    """Deploy the model function after a successful build, or fail the deployment; the resulting status."""
    deployment = store.get_deployment(state.deployment_id)
    if deployment is None:
        logger.warning("build event for no known deployment", deployment_id=state.deployment_id)
        return "skipped: no such deployment"
    transition = lifecycle.on_build_state(deployment.status, deployment.build_id, state)
    if transition is None:
        return f"skipped: {state.status} for a deployment that is {deployment.status}"
    if transition.status == "failed":
        _fail(deployment.id, transition, ("building",))
        return "failed"
    function_name = settings.current().function_name(deployment.id)
    try:
        if not deployment.image_uri:
            raise RuntimeError("the deployment has no image URI")
        functions.deploy(function_name, deployment.image_uri)
    except Exception as error:
        # Whatever failed, the deployment must end "failed", never stuck in building.
        logger.exception("deploying the model function failed", deployment_id=deployment.id)
        _fail(deployment.id, lifecycle.internal_failure("creating the model function", error), ("building",))
        return "failed"
    store.update_status(deployment.id, "ready", expected=("building",), function_name=function_name)
    logger.info("deployment ready", deployment_id=deployment.id, function_name=function_name)
    return "ready"


@logger.inject_lambda_context
def build_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Entry point for CodeBuild "Build State Change" events from EventBridge."""
    state = lifecycle.build_state(event)
    if state is None:
        logger.warning("not a ServeML build event", detail_type=event.get("detail-type"))
        return {"results": []}
    return {"results": [{"deployment_id": state.deployment_id, "outcome": on_build_state(state)}]}


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Entry point for S3 ObjectCreated notifications (and, routed on, CodeBuild state changes)."""
    if event.get("source") == "aws.codebuild":
        state = lifecycle.build_state(event)
        if state is None:
            return {"results": []}
        return {"results": [{"deployment_id": state.deployment_id, "outcome": on_build_state(state)}]}
    results = []
    for record in event.get("Records") or []:
        upload = lifecycle.upload(record)
        if upload is None:
            continue
        results.append({"deployment_id": upload.deployment_id, "outcome": on_upload(upload)})
    return {"results": results}
