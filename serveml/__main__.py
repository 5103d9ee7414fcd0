"""``python -m serveml``: the same CLI as the ``serveml`` console script, for when no script is on PATH."""

from __future__ import annotations

import sys

from serveml.cli import main

sys.exit(main())
