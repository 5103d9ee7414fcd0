"""Per-user request quotas: a fixed window counted in DynamoDB.

One UpdateItem per request both counts and decides: ``ADD`` increments the window's counter only
while the condition ``count < limit`` holds, so concurrent requests (from any number of Lambda
instances) can never push more than ``limit`` through one window. A failed condition is the 429.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from botocore.exceptions import ClientError

from controlplane import aws, settings, store


@dataclass(frozen=True, slots=True)
class Quota:
    """The outcome of counting one request."""

    allowed: bool
    limit: int
    remaining: int
    reset_at: int
    retry_after: int

    def headers(self) -> dict[str, str]:
        """The X-RateLimit-* headers every authenticated response carries."""
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_at),
        }


def window(now: float, length_s: int) -> tuple[int, int]:
    """The start and end (epoch seconds) of the fixed window holding ``now``."""
    start = int(now) - int(now) % length_s
    return start, start + length_s


def consume(user_id: str, *, now: float | None = None) -> Quota:
    """Count one request for ``user_id`` in the current window, if the limit allows it."""
    config = settings.current()
    moment = time.time() if now is None else now
    start, end = window(moment, config.rate_window_s)
    retry_after = max(1, math.ceil(end - moment))
    try:
        answer = aws.client("dynamodb").update_item(
            TableName=config.rate_table,
            Key=store.to_dynamodb({"key": f"{user_id}#{start}"}),
            UpdateExpression="SET #expires = if_not_exists(#expires, :expires) ADD #count :one",
            ConditionExpression="attribute_not_exists(#count) OR #count < :limit",
            ExpressionAttributeNames={"#count": "count", "#expires": "expires_at"},
            ExpressionAttributeValues=store.to_dynamodb(
                {":one": 1, ":limit": config.rate_limit, ":expires": end + config.rate_window_s}
            ),
            ReturnValues="UPDATED_NEW",
        )
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
            raise
        return Quota(False, config.rate_limit, 0, end, retry_after)
    used = int(store.from_dynamodb(answer["Attributes"])["count"])
    return Quota(True, config.rate_limit, max(0, config.rate_limit - used), end, retry_after)
