"""The ``serveml`` command line.

One ``_add_<command>`` function declares each subcommand's arguments and one ``_cmd_<command>``
function runs it; ``main`` turns every expected failure into a one-line message and an exit code.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import getpass
import importlib.util
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from serveml import __version__
from serveml.client import (
    Client,
    ClientConfig,
    ClientError,
    error_from,
    save_credentials,
)
from serveml.rie import RIENotFound, find_rie
from serveml.rie import command as emulator_command

INVOKE_PATH = "/2015-03-31/functions/function/invocations"
HANDLER = "runtime.handler.handler"

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

# Lambda's own limits, so a value that works here also deploys.
MEMORY_RANGE = (128, 10240)
TIMEOUT_RANGE = (1, 900)

#: Where a deployment ends; every other status is on its way.
FINAL_STATUSES = ("ready", "failed")
DEFAULT_DEMO_USER = "demo@example.com"


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


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:  # also refuses NaN
        raise argparse.ArgumentTypeError(f"{text} is not above 0")
    return value


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


def _import_path_for(package: str) -> None:
    """Make ``package`` importable from the checkout that ``runtime`` is installed from.

    An editable install maps only the packages it lists; a package of the same checkout that is not
    among them (the control plane is not part of the model image) is found beside ``runtime/``.
    """
    if importlib.util.find_spec(package) is not None:
        return
    with contextlib.suppress(CLIError):
        root = _project_root()
        if (root / package / "__init__.py").is_file():
            sys.path.insert(0, str(root))


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
    argv = emulator_command(rie, args.host, args.port, HANDLER)

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
    p.add_argument(
        "--optimize",
        choices=["onnx"],
        help="convert the model to ONNX (skl2onnx, torch.onnx, tf2onnx) and serve it with onnxruntime only, "
        "if it predicts what the original does on a sample made from its input contract (within "
        "atol 1e-05 + rtol 0.0001 x |original|, labels exactly); otherwise keep the original and say why",
    )
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
        optimize=args.optimize,
    )
    try:
        result = build(options, echo=lambda line: print(line, flush=True))
    except BuildError as exc:
        raise CLIError(str(exc)) from None
    print(summary(result, args.base_image))
    return EXIT_OK


# -- the control-plane API ----------------------------------------------------------------------
#
# These commands talk to the API at SERVEML_API_URL with the token from SERVEML_API_KEY or from
# `serveml login`. Every error answer arrives as an APIError and `main` prints it as
# "serveml: error: CODE: message", the server's own words.


def _verbose_parent() -> argparse.ArgumentParser:
    """``--verbose`` for the API commands, so that it works after the command's name too.

    SUPPRESS as the default keeps a subcommand that was not given the flag from resetting the
    value the top-level parser already set (``serveml --verbose status ID``).
    """
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="log each API request: method, URL, status and time (as SERVEML_DEBUG does)",
    )
    return parent


def _client(args: argparse.Namespace, *, use_saved_login: bool = True) -> Client:
    try:
        config = ClientConfig.from_env(verbose=getattr(args, "verbose", False), use_saved_login=use_saved_login)
    except ClientError as exc:
        raise CLIError(str(exc), EXIT_USAGE) from None
    if config.debug:
        _log_requests()
    return Client(config)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time, as ``print(..., file=sys.stderr)`` does."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("serveml: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def _log_requests() -> None:
    logger = logging.getLogger("serveml.client")
    if not any(isinstance(handler, _StderrHandler) for handler in logger.handlers):
        logger.addHandler(_StderrHandler())
    logger.setLevel(logging.INFO)
    logger.propagate = False


def _progress(line: str) -> None:
    # Progress goes to stderr, so that stdout holds only what a script would capture (an id, JSON).
    print(f"serveml: {line}", file=sys.stderr, flush=True)


def _elapsed(seconds: float) -> str:
    whole = int(seconds)
    if whole < 60:
        return f"{whole} s"
    return f"{whole // 60} min" + (f" {whole % 60} s" if whole % 60 else "")


def _size(num_bytes: int) -> str:
    size = float(num_bytes)
    for unit in ("B", "KB", "MB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def _add_login(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "login",
        parents=[_verbose_parent()],
        help="log in to the ServeML API and save the token",
        description=(
            "Log in to the API at SERVEML_API_URL and save the token in ~/.serveml/credentials "
            "(readable by you alone) for the other commands."
        ),
    )
    p.add_argument("--email", metavar="E", help="account email (asked for when not given)")
    p.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    p.set_defaults(func=_cmd_login)


def _cmd_login(args: argparse.Namespace) -> int:
    interactive = sys.stdin.isatty()
    email = args.email
    if not email:
        if args.password_stdin or not interactive:
            raise CLIError("give --email (there is no terminal to ask on)", EXIT_USAGE)
        print("Email: ", end="", file=sys.stderr, flush=True)
        email = sys.stdin.readline().strip()
    if args.password_stdin:
        # The first line, as `docker login --password-stdin` reads it: the newline is not part of it.
        password = sys.stdin.readline().rstrip("\r\n")
    elif interactive:
        password = getpass.getpass("Password: ")
    else:
        raise CLIError("no terminal to ask for the password on; pipe it in with --password-stdin", EXIT_USAGE)
    if not email or not password:
        raise CLIError("an email and a password are needed", EXIT_USAGE)

    client = _client(args, use_saved_login=False)
    answer = client.login(email, password)
    token = answer.get("token")
    if not isinstance(token, str) or not token:
        raise CLIError("the server's login answer holds no token")
    expires_in = answer.get("expires_in")
    path = save_credentials(
        client.config.api_url, token, float(expires_in) if isinstance(expires_in, int | float) else None
    )
    lasts = f", valid for {_elapsed(float(expires_in))}" if isinstance(expires_in, int | float) else ""
    _progress(f"logged in to {client.config.api_url} as {email}{lasts}; token saved to {path}")
    if os.environ.get("SERVEML_API_KEY"):
        _progress("note: SERVEML_API_KEY is set, and is used instead of this login while it is")
    return EXIT_OK


def _add_deploy(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "deploy",
        parents=[_verbose_parent()],
        help="upload a model to the ServeML API and wait until it serves",
        description=(
            "Create a deployment, upload MODEL (and its requirements) to it, then follow it until it is "
            "ready or has failed. The deployment's id is printed on standard output."
        ),
    )
    p.add_argument("model", metavar="MODEL", help="model file")
    p.add_argument("--requirements", type=Path, metavar="FILE", help="requirements.txt with extra packages")
    p.add_argument("--name", metavar="N", help="a name for the deployment")
    p.add_argument("--no-wait", action="store_true", help="return once uploaded; follow with `serveml status`")
    p.add_argument(
        "--poll-interval", type=_positive_float, default=5.0, metavar="S", help="seconds between checks (default: 5)"
    )
    p.add_argument(
        "--wait-timeout",
        type=_positive_float,
        default=1800.0,
        metavar="S",
        help="stop waiting after this many seconds; the deployment carries on (default: 1800)",
    )
    p.set_defaults(func=_cmd_deploy)


def _cmd_deploy(args: argparse.Namespace) -> int:
    started = time.monotonic()
    model = _existing_model(args.model)
    if not model.is_file():
        raise CLIError(f"{args.model} is not a file: deploy uploads one model file", EXIT_USAGE)
    requirements: Path | None = args.requirements
    if requirements is not None and not requirements.is_file():
        raise CLIError(f"--requirements {requirements}: no such file", EXIT_USAGE)
    client = _client(args)

    extra = {"name": args.name} if args.name else {}
    created = client.create_deployment(model.name, requirements is not None, **extra)
    deployment_id = created.get("id")
    if not isinstance(deployment_id, str) or not deployment_id:
        raise CLIError("the server's answer holds no deployment id")
    _progress(f"deployment {deployment_id} created")
    try:
        _upload(client, created.get("upload"), "model", model)
        if requirements is not None:
            _upload(client, created.get("upload"), "requirements", requirements)
    except (ClientError, CLIError):
        # A deployment whose files never arrived would sit in "uploading" for good.
        with contextlib.suppress(ClientError):
            client.delete_deployment(deployment_id)
            _progress(f"deployment {deployment_id} deleted: its upload failed")
        raise

    if args.no_wait:
        _progress(f"uploaded; follow it with: serveml status {deployment_id}")
        print(deployment_id, flush=True)
        return EXIT_OK
    return _wait_for(client, deployment_id, str(created.get("status", "uploading")), args, started)


def _upload(client: Client, upload: Any, kind: str, path: Path) -> None:
    target = upload.get(kind) if isinstance(upload, dict) else None
    if not isinstance(target, dict) or not isinstance(target.get("url"), str):
        raise CLIError(f"the server's answer holds no upload URL for the {kind}")
    headers = target.get("headers")
    _progress(f"uploading {kind} {path.name} ({_size(path.stat().st_size)})")
    client.upload(target["url"], path, headers if isinstance(headers, dict) else None)


def _wait_for(client: Client, deployment_id: str, status: str, args: argparse.Namespace, started: float) -> int:
    """Poll until ``ready`` or ``failed``, printing one line per change of status."""
    _progress(f"waiting for {deployment_id}: {status}")
    deployment: dict[str, Any] = {}
    while status not in FINAL_STATUSES:
        if time.monotonic() - started > args.wait_timeout:
            raise CLIError(
                f"deployment {deployment_id} is still {status} after {_elapsed(time.monotonic() - started)}; "
                f"it carries on: follow it with `serveml status {deployment_id}` and "
                f"`serveml logs {deployment_id} --type build`"
            )
        try:
            time.sleep(args.poll_interval)
            deployment = client.get_deployment(deployment_id)
        except KeyboardInterrupt:
            _progress(f"stopped waiting; {deployment_id} carries on: serveml status {deployment_id}")
            return 130
        now = str(deployment.get("status"))
        if now != status:
            _progress(f"{status} -> {now} ({_elapsed(time.monotonic() - started)})")
            status = now

    if status == "failed":
        reason = deployment.get("reason") or "no reason given"
        print(f"serveml: error: deployment {deployment_id} failed: {reason}", file=sys.stderr)
        _progress(f"the build log: serveml logs {deployment_id} --type build")
        return EXIT_FAILED
    function = deployment.get("function_name")
    _progress(f"ready{f' as {function}' if function else ''}: serveml predict {deployment_id} --input request.json")
    print(deployment_id, flush=True)
    return EXIT_OK


def _add_status(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "status",
        parents=[_verbose_parent()],
        help="show a deployment's status",
        description="Show deployment ID: its status, the reason when it failed, and its function.",
    )
    p.add_argument("id", metavar="ID", help="deployment id")
    p.add_argument("--json", action="store_true", help="print the API's JSON as it is")
    p.set_defaults(func=_cmd_status)


def _cmd_status(args: argparse.Namespace) -> int:
    deployment = _client(args).get_deployment(args.id)
    if args.json:
        print(json.dumps(deployment, indent=2, ensure_ascii=False))
        return EXIT_OK
    fields = (
        ("id", "id"),
        ("status", "status"),
        ("reason", "reason"),
        ("function", "function_name"),
        ("created", "created_at"),
        ("updated", "updated_at"),
    )
    for label, key in fields:
        value = deployment.get(key)
        if value not in (None, ""):
            print(f"{label + ':':<10}{value}")
    return EXIT_OK


def _add_logs(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "logs",
        parents=[_verbose_parent()],
        help="print a deployment's build or runtime log",
        description="Print the latest events of deployment ID's build log or its function's log.",
    )
    p.add_argument("id", metavar="ID", help="deployment id")
    p.add_argument("--tail", type=_int_in(1, 1_000_000), metavar="N", help="the last N events (the server's default)")
    p.add_argument("--type", dest="log_type", choices=["build", "runtime"], help="which log (the server's default)")
    p.set_defaults(func=_cmd_logs)


def _cmd_logs(args: argparse.Namespace) -> int:
    answer = _client(args).logs(args.id, log_type=args.log_type, tail=args.tail)
    events = answer.get("events")
    if not isinstance(events, list) or not events:
        _progress(f"no {args.log_type or ''} log events for {args.id} yet".replace("  ", " "))
        return EXIT_OK
    for event in events:
        if isinstance(event, dict):
            message = str(event.get("message", "")).rstrip("\n")
            print(f"{_timestamp(event.get('timestamp'))} {message}")
    return EXIT_OK


def _timestamp(value: Any) -> str:
    """CloudWatch's milliseconds since the epoch as UTC time; a string as it came."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        except (OverflowError, OSError, ValueError):
            return str(value)
    return "-" if value is None else str(value)


def _add_predict(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "predict",
        parents=[_verbose_parent()],
        help="send a request to a deployed model",
        description="Send the JSON request in FILE to deployment ID and print its answer; exit 1 on an error.",
    )
    p.add_argument("id", metavar="ID", help="deployment id")
    p.add_argument("--input", required=True, metavar="FILE", help="JSON request ('-' reads standard input)")
    p.set_defaults(func=_cmd_predict)


def _cmd_predict(args: argparse.Namespace) -> int:
    payload = _read_event(args.input)
    response = _client(args).predict(args.id, payload)
    if response.body is not None and not isinstance(response.body, str):
        print(json.dumps(response.body, indent=2, ensure_ascii=False))
    elif response.raw:
        print(response.raw.decode("utf-8", "replace"))
    is_envelope = isinstance(response.body, dict) and "error" in response.body
    if response.ok and not is_envelope:
        return EXIT_OK
    error = error_from(response.status, "", response.body, response.raw, response.headers)
    print(f"serveml: error: {error}", file=sys.stderr)
    return EXIT_FAILED


def _add_controlplane(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "controlplane",
        help="run the control-plane API locally, on moto, to try the API commands by hand",
        description=(
            "Start a moto server, create the tables, bucket, parameter and build project the API needs "
            "in it, add a demo user, and serve the API on 127.0.0.1:PORT until Ctrl-C."
        ),
    )
    p.add_argument("--port", type=_int_in(1, 65535), default=8000, help="API port (default: 8000)")
    p.add_argument("--moto-port", type=_int_in(1, 65535), metavar="P", help="moto's port (default: a free one)")
    p.add_argument(
        "--user", metavar="EMAIL", default=DEFAULT_DEMO_USER, help=f"demo user (default: {DEFAULT_DEMO_USER})"
    )
    p.add_argument("--password", metavar="PW", help="demo user's password (default: a random one, printed)")
    p.set_defaults(func=_cmd_controlplane)


def _cmd_controlplane(args: argparse.Namespace) -> int:
    _import_path_for("controlplane")
    try:
        from controlplane import local  # noqa: PLC0415 - boto3 and the API, for this command alone
    except ModuleNotFoundError as exc:
        if exc.name in ("controlplane", "controlplane.local"):
            raise CLIError(f"the control plane (controlplane/) is not importable from {sys.executable}") from None
        raise CLIError(f"the local control plane needs the module {exc.name}; install it") from None
    try:
        code: int = local.run(port=args.port, moto_port=args.moto_port, email=args.user, password=args.password)
    except local.LocalError as exc:
        raise CLIError(str(exc)) from None
    return code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="serveml", description="Serve ML models from AWS Lambda containers.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log each API request: method, URL, status and time"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_serve(sub)
    _add_test(sub)
    _add_build(sub)
    _add_login(sub)
    _add_deploy(sub)
    _add_status(sub)
    _add_logs(sub)
    _add_predict(sub)
    _add_controlplane(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command: Command = args.func
    try:
        return command(args)
    except CLIError as exc:
        print(f"serveml: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except ClientError as exc:
        # An APIError reads "CODE: message", the server's own code and words.
        print(f"serveml: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
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
