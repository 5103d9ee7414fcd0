"""The pickle scan lives in ``runtime.scan``, so that the image (which ships ``runtime/``) refuses
hostile pickles at init exactly as the builder does; this module keeps the builder's import path."""

from __future__ import annotations

from runtime.scan import (
    ALLOWED_BUILTINS,
    ALLOWED_MODULES,
    Finding,
    Report,
    decompress,
    is_allowed,
    is_pickle_based,
    scan,
)

__all__ = [
    "ALLOWED_BUILTINS",
    "ALLOWED_MODULES",
    "Finding",
    "Report",
    "decompress",
    "is_allowed",
    "is_pickle_based",
    "scan",
]
