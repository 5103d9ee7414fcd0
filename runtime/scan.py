"""Find what a pickle would import, without unpickling it.

Pickles (joblib, ``pickle``, whole ``torch.save`` modules) run code when loaded: a ``GLOBAL``
opcode names any callable and ``REDUCE`` calls it. ``scan`` walks the opcodes with ``pickletools``
and reports every global against an allow-list of the modules a model legitimately needs.

joblib writes numeric array bytes straight into the stream after each ``NumpyArrayWrapper``, so
the walker keeps a small symbolic stack: enough to read the wrapper's shape and dtype and skip
exactly those bytes, never enough to call anything.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import math
import pickletools
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: Module prefixes whose classes and functions a model pickle may name.
ALLOWED_MODULES: tuple[str, ...] = (
    "sklearn",
    "numpy",
    "scipy",
    "joblib",
    "pandas",
    "collections",
    "copyreg",
    "_codecs",
    "datetime",
    "decimal",
    "fractions",
    "functools.partial",
    "torch",
    "skops",
    "threadpoolctl",
)

#: Builtins that build plain data; everything else in ``builtins`` (eval, exec, getattr, open,
#: __import__, ...) is refused.
ALLOWED_BUILTINS = frozenset(
    {"set", "frozenset", "slice", "range", "complex", "bytearray", "bytes", "dict", "list", "tuple", "object"}
)
ALLOWED_BUILTINS |= {"int", "float", "str", "bool", "type", "NoneType"}


@dataclass(frozen=True, slots=True)
class Finding:
    """A global a pickle names that is not on the allow-list."""

    module: str
    name: str
    member: str

    def __str__(self) -> str:
        where = f" (in {self.member})" if self.member else ""
        return f"{self.module}.{self.name}{where}"


@dataclass(slots=True)
class Report:
    """Every global a file names, and those that are not allowed."""

    globals: set[str] = field(default_factory=set)
    refused: list[Finding] = field(default_factory=list)
    pickles: int = 0

    @property
    def safe(self) -> bool:
        return not self.refused


def is_allowed(module: str, name: str) -> bool:
    if module in ("builtins", "__builtin__"):
        return name in ALLOWED_BUILTINS
    dotted = f"{module}.{name}"
    return any(p in (dotted, module) or module.startswith(p + ".") for p in ALLOWED_MODULES)


def is_pickle_based(path: Path) -> bool:
    """True for the formats ``scan`` reads: raw or compressed pickles, and ``torch.save`` archives.

    TorchScript and ``torch.export`` archives hold pickles too, but torch.jit and torch.export read
    them with their own loaders, which build TorchScript classes instead of importing Python ones.
    """
    try:
        with path.open("rb") as handle:
            head = handle.read(4)
    except OSError:
        return False
    if head == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except zipfile.BadZipFile:
            return False
        leaves = {name.rsplit("/", 1)[-1] for name in names}
        compiled = "constants.pkl" in leaves or "archive_format" in leaves or any("/code/" in n for n in names)
        return "data.pkl" in leaves and not compiled
    name = path.name.lower()
    if name.endswith((".pkl", ".pickle", ".joblib", ".pkl.gz", ".joblib.gz")):
        return True
    return head[:1] == b"\x80" or any(head.startswith(magic[:2]) for magic, _ in _DECOMPRESSORS)


def scan(path: Path) -> Report:
    """Scan a pickle, gzipped pickle, joblib file, or zip archive of pickles (torch.save)."""
    report = Report()
    data = decompress(path.read_bytes())
    if data[:4] == b"PK\x03\x04":
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for member in archive.namelist():
                if member.endswith(".pkl"):
                    _scan_stream(io.BytesIO(archive.read(member)), report, member)
        return report
    stream = io.BytesIO(data)
    while stream.tell() < len(data):  # joblib and plain pickle files may hold several pickles
        before = stream.tell()
        _scan_stream(stream, report, "")
        if stream.tell() == before:
            break
    return report


#: Compressions joblib (and users following the guide's gzip advice) apply to a whole pickle.
_DECOMPRESSORS: tuple[tuple[bytes, Any], ...] = (
    (b"\x1f\x8b", gzip.decompress),
    (b"\x78", zlib.decompress),
    (b"BZh", bz2.decompress),
    (b"\xfd7zXZ", lzma.decompress),
)


def decompress(data: bytes) -> bytes:
    """The pickle inside a gzip, zlib (joblib), bz2 or xz file; other bytes unchanged."""
    for magic, decompress in _DECOMPRESSORS:
        if data.startswith(magic):
            return bytes(decompress(data))
    return data


class _Global:
    __slots__ = ("module", "name")

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name


class _Call:
    __slots__ = ("args", "func", "state")

    def __init__(self, func: Any, args: Any) -> None:
        self.func, self.args, self.state = func, args, None


_MARK = object()


def _scan_stream(stream: io.BytesIO, report: Report, member: str) -> None:
    report.pickles += 1
    stack: list[Any] = []
    memo: dict[int, Any] = {}
    for opcode, arg, _pos in _ops(stream):
        name = opcode.name
        if name in ("GLOBAL", "STACK_GLOBAL", "INST"):
            if name == "STACK_GLOBAL":
                global_name, module = stack.pop(), stack.pop()
            else:
                module, _, global_name = str(arg).partition(" ")
            found = _Global(str(module), str(global_name))
            report.globals.add(f"{found.module}.{found.name}")
            if not is_allowed(found.module, found.name):
                report.refused.append(Finding(found.module, found.name, member))
            if name == "INST":
                _pop_mark(stack)
                stack.append(_Call(found, ()))
            else:
                stack.append(found)
        elif name == "BUILD":
            state = stack.pop()
            target = stack[-1] if stack else None
            if isinstance(target, _Call):
                target.state = state
                if _is_array_wrapper(target):
                    _skip_array(stream, state, report, member)
        else:
            _simulate(name, arg, stack, memo)
        if name == "STOP":
            return


def _ops(stream: io.BytesIO) -> Iterator[tuple[Any, Any, int | None]]:
    # genops reads from the stream's current position on every step, so skipping bytes in the
    # stream between steps (joblib array data) is seen by the generator
    yield from pickletools.genops(stream)


def _pop_mark(stack: list[Any]) -> list[Any]:
    items: list[Any] = []
    while stack:
        item = stack.pop()
        if item is _MARK:
            break
        items.append(item)
    items.reverse()
    return items


_PUSH_ARG = {
    "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "STRING", "BINSTRING", "SHORT_BINSTRING",
    "BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8",
    "FLOAT", "BINFLOAT", "BYTEARRAY8",
}  # fmt: skip
_CONSTANTS = {"NONE": None, "NEWTRUE": True, "NEWFALSE": False, "EMPTY_DICT": "dict", "EMPTY_LIST": "list"}
_TUPLES = {"TUPLE1": 1, "TUPLE2": 2, "TUPLE3": 3}


def _simulate(name: str, arg: Any, stack: list[Any], memo: dict[int, Any]) -> None:  # noqa: PLR0912, PLR0915 - one branch per opcode family
    """Stack effects of the data-building opcodes; calls are recorded, never made."""
    if name in _PUSH_ARG:
        stack.append(arg)
    elif name in _CONSTANTS:
        value = _CONSTANTS[name]
        stack.append({} if value == "dict" else [] if value == "list" else value)
    elif name in ("EMPTY_TUPLE",):
        stack.append(())
    elif name in ("EMPTY_SET",):
        stack.append(set())
    elif name in _TUPLES:
        count = _TUPLES[name]
        items = stack[-count:]
        del stack[-count:]
        stack.append(tuple(items))
    elif name in ("MARK",):
        stack.append(_MARK)
    elif name in ("TUPLE", "FROZENSET"):
        stack.append(tuple(_pop_mark(stack)))
    elif name in ("LIST", "DICT"):
        items = _pop_mark(stack)
        stack.append(items if name == "LIST" else dict(zip(items[::2], items[1::2], strict=False)))
    elif name in ("APPEND",):
        value = stack.pop()
        if stack and isinstance(stack[-1], list):
            stack[-1].append(value)
    elif name in ("APPENDS", "ADDITEMS"):
        _pop_mark(stack)
    elif name in ("SETITEM", "SETITEMS"):
        _set_items(name, stack)
    elif name in ("REDUCE", "NEWOBJ"):
        args = stack.pop()
        stack.append(_Call(stack.pop(), args))
    elif name in ("NEWOBJ_EX",):
        stack.pop()
        args = stack.pop()
        stack.append(_Call(stack.pop(), args))
    elif name in ("OBJ",):
        items = _pop_mark(stack)
        stack.append(_Call(items[0] if items else None, tuple(items[1:])))
    elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
        memo[int(arg)] = stack[-1] if stack else None
    elif name in ("MEMOIZE",):
        memo[len(memo)] = stack[-1] if stack else None
    elif name in ("GET", "BINGET", "LONG_BINGET"):
        stack.append(memo.get(int(arg)))
    elif name in ("POP",):
        if stack:
            stack.pop()
    elif name in ("POP_MARK",):
        _pop_mark(stack)
    elif name in ("DUP",):
        stack.append(stack[-1])
    elif name in ("PERSID", "BINPERSID"):
        if name == "BINPERSID" and stack:
            stack.pop()
        stack.append(None)
    elif name in ("EXT1", "EXT2", "EXT4", "NEXT_BUFFER"):
        stack.append(None)
    # PROTO, FRAME, STOP, READONLY_BUFFER: no stack effect that matters here


def _set_items(name: str, stack: list[Any]) -> None:
    if name == "SETITEM":
        value, key = stack.pop(), stack.pop()
        if stack and isinstance(stack[-1], dict):
            stack[-1][_key(key)] = value
        return
    items = _pop_mark(stack)
    if stack and isinstance(stack[-1], dict):
        for key, value in zip(items[::2], items[1::2], strict=False):
            stack[-1][_key(key)] = value


def _key(key: Any) -> Any:
    return key if isinstance(key, str | int | float | bytes | tuple | None) else id(key)


def _is_array_wrapper(call: _Call) -> bool:
    func = call.func
    return isinstance(func, _Global) and func.module.startswith("joblib") and func.name == "NumpyArrayWrapper"


def _skip_array(stream: io.BytesIO, state: Any, report: Report, member: str) -> None:
    """Step over the array bytes joblib wrote after a NumpyArrayWrapper."""
    if not isinstance(state, dict):
        raise ValueError("a joblib array wrapper without its shape and dtype")
    dtype = _dtype(state.get("dtype"))
    if dtype.hasobject:
        _scan_stream(stream, report, member)  # object arrays are a nested pickle
        return
    if state.get("numpy_array_alignment_bytes") is not None:
        padding = stream.read(1)
        stream.seek(padding[0] if padding else 0, io.SEEK_CUR)
    shape = state.get("shape")
    if not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise ValueError(f"a joblib array wrapper with an unreadable shape {shape!r}")
    stream.seek(math.prod(shape) * dtype.itemsize, io.SEEK_CUR)


def _dtype(value: Any) -> np.dtype[Any]:
    # numpy.dtype('f8', False, True) with a BUILD state (3, '<', ...) for the byte order
    if isinstance(value, _Call) and isinstance(value.args, tuple) and value.args:
        spec = value.args[0]
        if isinstance(spec, str) and spec != "O":
            try:
                return np.dtype(spec)
            except TypeError:
                pass
        if spec == "O":
            return np.dtype(object)
    raise ValueError("a joblib array wrapper whose dtype cannot be read")
