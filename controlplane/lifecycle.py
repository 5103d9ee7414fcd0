"""A deployment's life, as pure decisions: which status follows which event.

uploading -> validating -> building -> ready, with failed reachable from every step. Validation
starts once every upload the deployment asked for is in the bucket, whichever arrives last (the
model or requirements.txt). A new upload may restart a ready or failed deployment; a duplicate S3
event (S3 delivers at least once) while one is validating or building changes nothing. Nothing
here calls AWS.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

#: Statuses a model upload may (re)start validation from.
UPLOAD_FROM = ("uploading", "ready", "failed")
FAILED_BUILD_STATUSES = frozenset({"FAILED", "FAULT", "STOPPED", "TIMED_OUT"})
_UPLOAD_KEY = re.compile(
    r"uploads/(?P<owner>[A-Za-z0-9_-]{1,64})/(?P<id>dep-[0-9a-f]{12})/(?:model/(?P<model>[^/]+)|requirements\.txt)"
)
_MAX_REASON_CHARS = 1000


@dataclass(frozen=True, slots=True)
class Transition:
    status: str
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Upload:
    """One object a deployment's presigned URL put in the bucket: its model or its requirements.txt."""

    bucket: str
    key: str
    owner: str
    deployment_id: str
    kind: str


@dataclass(frozen=True, slots=True)
class BuildState:
    deployment_id: str
    build_id: str
    status: str
    reason: str | None


def clip(reason: str) -> str:
    """A reason short enough to store and show."""
    reason = " ".join(reason.split())
    return reason if len(reason) <= _MAX_REASON_CHARS else reason[: _MAX_REASON_CHARS - 3] + "..."


def upload(record: dict[str, Any]) -> Upload | None:
    """The deployment upload an S3 ObjectCreated record reports; None for anything else."""
    if not str(record.get("eventName", "")).startswith("ObjectCreated"):
        return None
    s3 = record.get("s3") or {}
    bucket = str((s3.get("bucket") or {}).get("name", ""))
    # Keys in S3 event notifications are URL-encoded (a space arrives as "+").
    key = unquote_plus(str((s3.get("object") or {}).get("key", "")))
    match = _UPLOAD_KEY.fullmatch(key)
    if not bucket or match is None:
        return None
    return Upload(bucket, key, match["owner"], match["id"], "model" if match["model"] else "requirements")


def on_upload(current: str) -> Transition | None:
    """validating, unless this deployment is already being validated or built."""
    return Transition("validating") if current in UPLOAD_FROM else None


def after_validation(problem: str | None) -> Transition:
    """building when the model passed, else failed with the problem."""
    return Transition("failed", clip(problem)) if problem else Transition("building")


def build_id_of(value: str) -> str:
    """``project:uuid`` from a build ARN (events) or a plain build id (StartBuild)."""
    return value.split(":build/", 1)[-1]


def build_state(event: dict[str, Any]) -> BuildState | None:
    """What a CodeBuild "Build State Change" EventBridge event says; None for other events."""
    if event.get("source") != "aws.codebuild" or not isinstance(event.get("detail"), dict):
        return None
    detail: dict[str, Any] = event["detail"]
    info = detail.get("additional-information") or {}
    variables = (info.get("environment") or {}).get("environment-variables") or []
    deployment_id = next((str(v.get("value")) for v in variables if v.get("name") == "DEPLOYMENT_ID"), "")
    if not deployment_id:
        return None
    return BuildState(
        deployment_id=deployment_id,
        build_id=build_id_of(str(detail.get("build-id", ""))),
        status=str(detail.get("build-status", "")),
        reason=_failed_phase(info.get("phases") or []),
    )


def _failed_phase(phases: list[dict[str, Any]]) -> str | None:
    for phase in phases:
        status = phase.get("phase-status")
        if status in FAILED_BUILD_STATUSES:
            context = "; ".join(str(c) for c in phase.get("phase-context") or [] if c and str(c) != ": ")
            return f"{phase.get('phase-type', 'unknown')} phase {status}" + (f": {context}" if context else "")
    return None


def on_build_state(current: str, expected_build_id: str | None, state: BuildState) -> Transition | None:
    """ready or failed once the deployment's own build ends; None for stale builds and progress events."""
    if current != "building" or expected_build_id is None or build_id_of(expected_build_id) != state.build_id:
        return None
    if state.status == "SUCCEEDED":
        return Transition("ready")
    if state.status in FAILED_BUILD_STATUSES:
        detail = state.reason or "see the build logs (type=build)"
        return Transition("failed", clip(f"Image build {state.status.lower().replace('_', ' ')}: {detail}"))
    return None


def internal_failure(step: str, error: BaseException) -> Transition:
    """failed, naming the step and the error, for anything unexpected."""
    words = str(error) or type(error).__name__
    return Transition("failed", clip(f"Internal error while {step}: {type(error).__name__}: {words}"))
