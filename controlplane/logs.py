"""A deployment's log lines from CloudWatch Logs: its CodeBuild build, or its model function."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from controlplane import aws

#: The runtime log is read from this many most recently written streams (one per instance).
RECENT_STREAMS = 5


def _events(page: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"timestamp": int(e["timestamp"]), "message": str(e["message"])} for e in page.get("events", [])]


def _missing(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ResourceNotFoundException"


def build_events(project: str, build_id: str, tail: int) -> list[dict[str, Any]]:
    """The last ``tail`` lines of a CodeBuild build (stream named after the id's part after ``:``)."""
    stream = build_id.rsplit(":", 1)[-1]
    try:
        page = aws.client("logs").get_log_events(
            logGroupName=f"/aws/codebuild/{project}", logStreamName=stream, limit=tail, startFromHead=False
        )
    except ClientError as error:
        if _missing(error):
            return []
        raise
    return _events(page)[-tail:]


def function_events(function_name: str, tail: int) -> list[dict[str, Any]]:
    """The last ``tail`` lines across the function's most recently written log streams."""
    client = aws.client("logs")
    group = f"/aws/lambda/{function_name}"
    try:
        streams = client.describe_log_streams(
            logGroupName=group, orderBy="LastEventTime", descending=True, limit=RECENT_STREAMS
        ).get("logStreams", [])
        events: list[dict[str, Any]] = []
        for stream in streams:
            page = client.get_log_events(
                logGroupName=group, logStreamName=stream["logStreamName"], limit=tail, startFromHead=False
            )
            events.extend(_events(page))
    except ClientError as error:
        if _missing(error):
            return []
        raise
    events.sort(key=lambda event: event["timestamp"])
    return events[-tail:]
