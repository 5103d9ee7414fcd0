"""The README documents the fixed set of error codes, with each one's HTTP status."""

from __future__ import annotations

import re
from pathlib import Path

from runtime.errors import ERROR_CODES, InitError

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_every_error_code_is_in_the_readme_with_its_status():
    section = README.split("\n## Errors\n", 1)[1].split("\n## ", 1)[0]
    rows = dict(re.findall(r"^\| `([A-Z_]+)` \| (\w+) \|", section, flags=re.MULTILINE))
    assert set(rows) == set(ERROR_CODES)
    for code, cls in ERROR_CODES.items():
        assert rows[code] == ("init" if issubclass(cls, InitError) else str(cls.status)), code
