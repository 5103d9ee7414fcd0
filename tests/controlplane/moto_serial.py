"""``moto_server``, answering one request at a time: ``python -m tests.controlplane.moto_serial -H HOST -p PORT``.

moto's server is threaded, and its DynamoDB is not atomic under threads: ``UpdateItem`` reads the
item, checks the condition and writes in separate steps, and two first writes to a missing item
each create their own (one increment is lost). Real DynamoDB serialises the writes to one item,
which the rate limiter relies on. Serving requests one at a time gives moto that property; the
server is otherwise moto's own (``moto.server.main``, its arguments, its backends).
"""

from __future__ import annotations

import sys
from typing import Any

from moto import server


def main() -> None:
    threaded_run = server.run_simple

    def serial_run(*args: Any, **kwargs: Any) -> None:
        kwargs["threaded"] = False
        threaded_run(*args, **kwargs)

    server.run_simple = serial_run
    server.main(sys.argv[1:])


if __name__ == "__main__":
    main()
