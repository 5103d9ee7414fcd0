"""Password hashes: argon2id through argon2-cffi, with its recommended parameters."""

from __future__ import annotations

import functools

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    """An argon2id hash (salt and parameters encoded in the string)."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True when ``password`` matches ``password_hash``; never raises for a wrong password."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@functools.cache
def _decoy_hash() -> str:
    return _hasher.hash("serveml decoy password, never a real one")


def verify_nothing(password: str) -> None:
    """Spend the time a real verification takes, so an unknown email answers as slowly as a known one."""
    verify_password(_decoy_hash(), password)
