"""Users and deployments in DynamoDB, and the S3 keys of a deployment's uploads.

Deployment ids are checked against ``DEPLOYMENT_ID`` before any of them reaches a table or a key:
ids come from URLs and S3 keys, and only this shape may become part of a key.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from controlplane import aws, passwords, settings

DEPLOYMENT_ID = re.compile(r"dep-[0-9a-f]{12}")
STATUSES = ("uploading", "validating", "building", "ready", "failed")
MODEL_SUFFIXES = (".joblib", ".pkl", ".pkl.gz", ".skops", ".pt", ".pt2", ".keras", ".h5", ".onnx")
_FILENAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
OWNER_INDEX = "owner-index"


class UserExists(ValueError):
    """``create_user`` for an email that already has an account."""


@dataclass(frozen=True, slots=True)
class User:
    email: str
    user_id: str
    password_hash: str
    created_at: str


@dataclass(frozen=True, slots=True)
class Deployment:
    id: str
    owner: str
    status: str
    created_at: str
    updated_at: str
    model_filename: str
    model_key: str
    requirements_key: str | None = None
    name: str | None = None
    reason: str | None = None
    function_name: str | None = None
    image_uri: str | None = None
    build_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def upload_keys(self) -> tuple[str, ...]:
        """The S3 keys this deployment waits for: its model, and requirements.txt if it asked for one."""
        return (self.model_key, self.requirements_key) if self.requirements_key else (self.model_key,)

    def public(self) -> dict[str, Any]:
        """What the API shows of a deployment."""
        shown: dict[str, Any] = {
            "id": self.id,
            "status": self.status,
            "reason": self.reason,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "function_name": self.function_name,
        }
        if self.name:
            shown["name"] = self.name
        return shown


def now_iso() -> str:
    """UTC now as ISO 8601 with milliseconds: sorts as text in the owner index."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def normal_email(email: str) -> str:
    return email.strip().lower()


def is_deployment_id(value: str) -> bool:
    """True only for ids this service makes: ``dep-`` and 12 lowercase hex digits."""
    return DEPLOYMENT_ID.fullmatch(value) is not None


def new_deployment_id() -> str:
    return f"dep-{uuid.uuid4().hex[:12]}"


def is_model_filename(name: str) -> bool:
    """A plain file name (no directories, no leading dot) with a known model suffix."""
    return _FILENAME.fullmatch(name) is not None and ".." not in name and name.lower().endswith(MODEL_SUFFIXES)


def upload_prefix(owner: str, deployment_id: str) -> str:
    return f"uploads/{owner}/{deployment_id}/"


def model_key(owner: str, deployment_id: str, filename: str) -> str:
    return f"{upload_prefix(owner, deployment_id)}model/{filename}"


def requirements_key(owner: str, deployment_id: str) -> str:
    return f"{upload_prefix(owner, deployment_id)}requirements.txt"


_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def to_dynamodb(values: dict[str, Any]) -> dict[str, Any]:
    """Plain values as DynamoDB attribute values."""
    return {key: _serializer.serialize(value) for key, value in values.items()}


def from_dynamodb(item: dict[str, Any]) -> dict[str, Any]:
    """DynamoDB attribute values as plain values (numbers come back as Decimal)."""
    return {key: _deserializer.deserialize(value) for key, value in item.items()}


def _dynamodb() -> Any:
    return aws.client("dynamodb")


def _users() -> str:
    return settings.current().users_table


def _deployments() -> str:
    return settings.current().deployments_table


def _is_conditional_failure(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


# Users


def get_user(email: str) -> User | None:
    """The account for ``email`` (case-insensitive), if there is one."""
    found = _dynamodb().get_item(TableName=_users(), Key=to_dynamodb({"email": normal_email(email)})).get("Item")
    if found is None:
        return None
    item = from_dynamodb(found)
    return User(
        email=str(item["email"]),
        user_id=str(item["user_id"]),
        password_hash=str(item["password_hash"]),
        created_at=str(item.get("created_at", "")),
    )


def create_user(email: str, password: str) -> User:
    """Make an account (for set-up scripts and tests); ``UserExists`` if the email has one."""
    user = User(
        email=normal_email(email),
        user_id=f"usr-{uuid.uuid4().hex}",
        password_hash=passwords.hash_password(password),
        created_at=now_iso(),
    )
    try:
        _dynamodb().put_item(
            TableName=_users(),
            Item=to_dynamodb(
                {
                    "email": user.email,
                    "user_id": user.user_id,
                    "password_hash": user.password_hash,
                    "created_at": user.created_at,
                }
            ),
            ConditionExpression="attribute_not_exists(email)",
        )
    except ClientError as error:
        if _is_conditional_failure(error):
            raise UserExists(user.email) from None
        raise
    return user


# Deployments

_KNOWN = frozenset(Deployment.__dataclass_fields__) - {"extra"}


def _deployment(item: dict[str, Any]) -> Deployment:
    def optional(key: str) -> str | None:
        value = item.get(key)
        return None if value is None else str(value)

    return Deployment(
        id=str(item["id"]),
        owner=str(item["owner"]),
        status=str(item["status"]),
        created_at=str(item["created_at"]),
        updated_at=str(item.get("updated_at", item["created_at"])),
        model_filename=str(item.get("model_filename", "")),
        model_key=str(item.get("model_key", "")),
        requirements_key=optional("requirements_key"),
        name=optional("name"),
        reason=optional("reason"),
        function_name=optional("function_name"),
        image_uri=optional("image_uri"),
        build_id=optional("build_id"),
        extra={k: v for k, v in item.items() if k not in _KNOWN},
    )


def create_deployment(owner: str, model_filename: str, *, requirements: bool, name: str | None) -> Deployment:
    """Record a new deployment waiting for its uploads."""
    deployment_id = new_deployment_id()
    stamp = now_iso()
    item: dict[str, Any] = {
        "id": deployment_id,
        "owner": owner,
        "status": "uploading",
        "created_at": stamp,
        "updated_at": stamp,
        "model_filename": model_filename,
        "model_key": model_key(owner, deployment_id, model_filename),
    }
    if requirements:
        item["requirements_key"] = requirements_key(owner, deployment_id)
    if name:
        item["name"] = name
    # uuid4 collisions are not expected; the condition makes one an error instead of an overwrite.
    _dynamodb().put_item(
        TableName=_deployments(), Item=to_dynamodb(item), ConditionExpression="attribute_not_exists(id)"
    )
    return _deployment(item)


def get_deployment(deployment_id: str) -> Deployment | None:
    """The deployment with this id; None for an unknown or malformed id."""
    if not is_deployment_id(deployment_id):
        return None
    found = (
        _dynamodb()
        .get_item(TableName=_deployments(), Key=to_dynamodb({"id": deployment_id}), ConsistentRead=True)
        .get("Item")
    )
    return None if found is None else _deployment(from_dynamodb(found))


def owned_deployment(deployment_id: str, owner: str) -> Deployment | None:
    """The deployment if ``owner`` owns it: another user's is as absent as a missing one."""
    found = get_deployment(deployment_id)
    return found if found is not None and found.owner == owner else None


def list_deployments(owner: str) -> list[Deployment]:
    """The owner's deployments, newest first (through the owner index)."""
    found: list[Deployment] = []
    pages = (
        _dynamodb()
        .get_paginator("query")
        .paginate(
            TableName=_deployments(),
            IndexName=OWNER_INDEX,
            KeyConditionExpression="#owner = :owner",
            ExpressionAttributeNames={"#owner": "owner"},
            ExpressionAttributeValues=to_dynamodb({":owner": owner}),
            ScanIndexForward=False,
        )
    )
    for page in pages:
        found.extend(_deployment(from_dynamodb(item)) for item in page.get("Items", []))
    return found


def update_status(
    deployment_id: str,
    status: str,
    *,
    reason: str | None = None,
    expected: tuple[str, ...] | None = None,
    **fields: str,
) -> bool:
    """Set the status (and ``fields``); False when the record is gone or not in an ``expected`` status."""
    if status not in STATUSES:
        raise ValueError(f"unknown status {status!r}")
    names = {"#status": "status", "#updated": "updated_at", "#reason": "reason"}
    values: dict[str, Any] = {":status": status, ":updated": now_iso()}
    sets = ["#status = :status", "#updated = :updated"]
    for index, (key, value) in enumerate(sorted(fields.items())):
        names[f"#f{index}"] = key
        values[f":f{index}"] = value
        sets.append(f"#f{index} = :f{index}")
    if reason is not None:
        values[":reason"] = reason
        sets.append("#reason = :reason")
    expression = "SET " + ", ".join(sets) + ("" if reason is not None else " REMOVE #reason")
    condition = "attribute_exists(id)"
    if expected:
        for index, allowed in enumerate(expected):
            values[f":e{index}"] = allowed
        condition += f" AND #status IN ({', '.join(f':e{i}' for i in range(len(expected)))})"
    try:
        _dynamodb().update_item(
            TableName=_deployments(),
            Key=to_dynamodb({"id": deployment_id}),
            UpdateExpression=expression,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=to_dynamodb(values),
            ConditionExpression=condition,
        )
    except ClientError as error:
        if _is_conditional_failure(error):
            return False
        raise
    return True


def delete_deployment(deployment_id: str) -> None:
    _dynamodb().delete_item(TableName=_deployments(), Key=to_dynamodb({"id": deployment_id}))


def delete_uploads(owner: str, deployment_id: str) -> int:
    """Delete every object under the deployment's upload prefix; the number deleted."""
    s3 = aws.client("s3")
    bucket = settings.current().bucket
    deleted = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=upload_prefix(owner, deployment_id)):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
            deleted += len(keys)
    return deleted
