"""The ``serveml`` command line.

One ``_add_<command>`` function declares each subcommand's arguments and one ``_cmd_<command>``
function runs it; ``main`` turns every expected failure into a one-line message and an exit code.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from serveml import __version__
from serveml.rie import RIENotFound, find_rie

INVOKE_PATH = "/2015-03-31/functions/function/invocations"
HANDLER = "runtime.handler.handler"

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

# Lambda's own limits, so a value that works here also deploys.
MEMORY_RANGE = (128, 10240)
TIMEOUT_RANGE = (1, 900)


class CLIError(Exception):
    """An expected failure: printed as one line, exits with ``exit_code``."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


Command = Callable[[argparse.Namespace], int]


def _int_in(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is outside {low}..{high}")
        return value

    return parse


def _existing_model(text: str) -> Path:
    path = Path(text).expanduser()
    if not path.exists():
        raise CLIError(f"model not found: {text}", EXIT_USAGE)
    return path.resolve()


def _project_root() -> Path:
    """The directory from which ``runtime`` is importable, for the Lambda runtime's cwd and PYTHONPATH."""
    spec = importlib.util.find_spec("runtime")
    if spec is None or not spec.submodule_search_locations:
        raise CLIError("the ServeML runtime package (runtime/) is not importable from this Python")
    return Path(next(iter(spec.submodule_search_locations))).resolve().parent


def _require_module(name: str, hint: str) -> None:
    try:
        found = importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        found = False
    if not found:
        raise CLIError(f"{name} is not importable from {sys.executable}; {hint}")


def _check_port_free(host: str, port: int) -> None:
    # The emulator only logs a bind failure and exits; checking first gives a clear message.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # Without SO_REUSEADDR a port in TIME_WAIT after a restart would look taken.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise CLIError(f"{host}:{port} is already in use; pick another --port") from None
            raise CLIError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _run_forwarding_signals(argv: list[str], env: dict[str, str], cwd: Path) -> int:
    """Run ``argv`` until it exits, passing SIGINT/SIGTERM on so the emulator can stop its runtime."""
    child = subprocess.Popen(argv, env=env, cwd=cwd)

    def forward(signum: int, _frame: FrameType | None) -> None:
        if child.poll() is None:
            child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    # The shell's convention, so a signalled emulator does not look like a success.
    return 128 - code if code < 0 else code


def _add_serve(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "serve",
        help="serve a model locally behind the Lambda Runtime Interface Emulator",
        description="Run MODEL in awslambdaric behind the Lambda Runtime Interface Emulator, without Docker.",
    )
    p.add_argument("model", metavar="MODEL", help="model file, or a directory with the model and serveml.json")
    p.add_argument("--port", type=_int_in(1, 65535), default=9000, help="port to listen on (default: 9000)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument(
        "--memory", type=_int_in(*MEMORY_RANGE), default=3008, metavar="MB", help="reported memory size (default: 3008)"
    )
    p.add_argument(
        "--timeout", type=_int_in(*TIMEOUT_RANGE), default=300, metavar="S", help="invocation timeout (default: 300)"
    )
    p.set_defaults(func=_cmd_serve)


def _cmd_serve(args: argparse.Namespace) -> int:
    model = _existing_model(args.model)
    try:
        rie = find_rie()
    except RIENotFound as exc:
        raise CLIError(str(exc)) from None
    root = _project_root()
    _require_module("awslambdaric", "install it with: pip install awslambdaric")
    _check_port_free(args.host, args.port)

    env = dict(os.environ)
    env["SERVEML_MODEL_PATH"] = str(model)
    env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] = str(args.memory)
    env["AWS_LAMBDA_FUNCTION_TIMEOUT"] = str(args.timeout)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH", "")) if p)
    argv = [
        str(rie),
        "--runtime-interface-emulator-address",
        f"{args.host}:{args.port}",
        # The emulator's internal Runtime API defaults to 127.0.0.1:9001, so a second server (or
        # anything else on 9001) would make it panic; each server gets its own free port instead.
        "--runtime-api-address",
        f"127.0.0.1:{_free_loopback_port()}",
        sys.executable,
        "-m",
        "awslambdaric",
        HANDLER,
    ]

    shown_host = "127.0.0.1" if args.host in ("0.0.0.0", "") else args.host  # noqa: S104 - a wildcard is not dialable
    if ":" in shown_host:
        shown_host = f"[{shown_host}]"
    url = f"http://{shown_host}:{args.port}{INVOKE_PATH}"
    # Flushed before the emulator starts writing to the same stream.
    print(f"serveml: serving {model} at {url} (the model loads on the first invocation)", flush=True)
    print(f"serveml: try: curl -s -X POST {url} -d '{{\"health\": true}}'", flush=True)
    return _run_forwarding_signals(argv, env, root)


def _add_test(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "test",
        help="invoke a model once, in-process, with an event from a file",
        description="Load MODEL and answer one event in this process, as the Lambda handler would.",
    )
    p.add_argument("--model", required=True, metavar="MODEL", help="model file, or a directory with serveml.json")
    p.add_argument("--input", required=True, metavar="FILE", help="JSON event to send ('-' reads standard input)")
    p.set_defaults(func=_cmd_test)


def _read_event(source: str) -> Any:
    where = "standard input" if source == "-" else source
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise CLIError(f"cannot read {where}: {exc.strerror or exc}", EXIT_USAGE) from None
    except UnicodeDecodeError:
        raise CLIError(f"{where} is not UTF-8 text", EXIT_USAGE) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CLIError(f"{where} is not valid JSON: {exc}", EXIT_USAGE) from None


def _cmd_test(args: argparse.Namespace) -> int:
    model = _existing_model(args.model)
    event = _read_event(args.input)

    # The runtime logs (JSON lines, EMF metrics) to stdout as Lambda expects; here stdout is kept
    # for the response alone, so that `serveml test ... | jq` works.
    with contextlib.redirect_stdout(sys.stderr):
        # Imported here, not at the top: the runtime pulls in numpy and the model's framework, which
        # `serveml --version` and `serveml serve` (whose runtime runs in another process) never need.
        from runtime.context import LocalContext  # noqa: PLC0415
        from runtime.errors import ServeMLError  # noqa: PLC0415
        from runtime.service import load_service  # noqa: PLC0415

        try:
            service = load_service(model)
        except ServeMLError as exc:
            # Already "CODE: message": the same words the Lambda init error carries.
            print(str(exc), file=sys.stderr)
            return EXIT_FAILED
        response = json.loads(service.handle(event, LocalContext()))

    print(json.dumps(response, indent=2, ensure_ascii=False))
    error = _response_error(response)
    if error is not None:
        print(error, file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _response_error(response: Any) -> str | None:
    """ "CODE: message" when ``response`` reports an error, also inside an HTTP event's response."""
    if not isinstance(response, dict):
        return None
    status = response.get("statusCode")
    if isinstance(status, int) and isinstance(response.get("body"), str):
        try:
            body = json.loads(response["body"])
        except json.JSONDecodeError:
            body = None
        found = _response_error(body)
        return found if found is not None or status < 400 else f"HTTP {status}"
    error = response.get("error")
    if error is None:
        return None
    if isinstance(error, dict):
        return f"{error.get('code')}: {error.get('message')}"
    return str(error)


def _add_build(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "build",
        help="turn a model file into a container build context for Lambda",
        description="Check MODEL, then write a small, pinned Docker build context that serves it from Lambda.",
    )
    p.add_argument("model", metavar="MODEL", help="model file, SavedModel directory, or a directory with serveml.json")
    p.add_argument("--requirements", type=Path, metavar="FILE", help="extra packages the model needs")
    p.add_argument(
        "--framework",
        default="auto",
        choices=["auto", "sklearn", "pytorch", "tensorflow", "onnx"],
        help="default: auto",
    )
    p.add_argument("--out", type=Path, default=Path(".serveml/build"), metavar="DIR", help="default: .serveml/build")
    p.add_argument("--tag", metavar="NAME", help="image tag to suggest (default: serveml-<name>:<version>)")
    p.add_argument("--wheelhouse", type=Path, metavar="DIR", help="extra wheels, e.g. the PyTorch CPU wheel")
    p.add_argument("--python", default="3.11", choices=["3.11", "3.12", "3.13"], help="default: 3.11")
    p.add_argument("--arch", default="x86_64", choices=["x86_64", "arm64"], help="default: x86_64")
    p.add_argument("--base-image", metavar="IMAGE", help="base image for the SAM resource's build args")
    p.add_argument(
        "--sample", type=Path, metavar="FILE", help="request to validate with (default: made from the contract)"
    )
    p.add_argument("--trust", action="store_true", help="load pickles that import code outside the allow-list")
    p.add_argument("--max-size-mb", type=float, default=250.0, metavar="MB", help="model + requirements limit")
    p.set_defaults(func=_cmd_build)


def _cmd_build(args: argparse.Namespace) -> int:
    from builder.build import BuildError, BuildOptions, build, summary  # noqa: PLC0415 - numpy and friends

    model = _existing_model(args.model)
    for option in ("requirements", "sample", "wheelhouse"):
        value = getattr(args, option)
        if value is not None and not value.exists():
            raise CLIError(f"--{option} {value}: no such file or directory", EXIT_USAGE)
    options = BuildOptions(
        model=model,
        out=args.out,
        requirements=args.requirements,
        framework=args.framework,
        tag=args.tag,
        wheelhouse=args.wheelhouse,
        python=args.python,
        arch=args.arch,
        trust=args.trust,
        sample=args.sample,
        max_size_mb=args.max_size_mb,
        base_image=args.base_image,
    )
    try:
        result = build(options, echo=lambda line: print(line, flush=True))
    except BuildError as exc:
        raise CLIError(str(exc)) from None
    print(summary(result, args.base_image))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="serveml", description="Serve ML models from AWS Lambda containers.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_serve(sub)
    _add_test(sub)
    _add_build(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command: Command = args.func
    try:
        return command(args)
    except CLIError as exc:
        print(f"serveml: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        # A bug rather than a user mistake: SERVEML_DEBUG=1 shows where.
        if os.environ.get("SERVEML_DEBUG"):
            raise
        print(
            f"serveml: error: unexpected {type(exc).__name__}: {exc} (SERVEML_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
