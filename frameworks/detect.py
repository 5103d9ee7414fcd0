"""Tell a model file's framework from its name, first bytes or directory layout, without
importing any framework."""

from __future__ import annotations

from pathlib import Path

from runtime.errors import UnsupportedFramework

#: File suffix -> framework. Longest suffix wins (".pkl.gz" before ".gz").
SUFFIXES: dict[str, str] = {
    ".joblib": "sklearn",
    ".pkl": "sklearn",
    ".pickle": "sklearn",
    ".pkl.gz": "sklearn",
    ".joblib.gz": "sklearn",
    ".skops": "sklearn",
    ".pt": "pytorch",
    ".pth": "pytorch",
    ".pt2": "pytorch",
    ".torchscript": "pytorch",
    ".keras": "tensorflow",
    ".h5": "tensorflow",
    ".hdf5": "tensorflow",
    ".onnx": "onnx",
}

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_GZIP_MAGIC = b"\x1f\x8b"
_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTO = 0x80


def is_saved_model(path: Path) -> bool:
    return path.is_dir() and (path / "saved_model.pb").is_file()


def suffix_of(path: Path) -> str:
    name = path.name.lower()
    return max((s for s in SUFFIXES if name.endswith(s)), key=len, default="")


def looks_like_model(path: Path) -> bool:
    """True for a file or directory this module would recognise by name or layout."""
    return is_saved_model(path) or (path.is_file() and bool(suffix_of(path)))


def detect_framework(path: Path) -> str:
    """The framework of a model file or directory, or ``UNSUPPORTED_FRAMEWORK`` naming what was found."""
    if is_saved_model(path):
        return "tensorflow"
    if path.is_dir():
        raise UnsupportedFramework(
            f"{path} is a directory without saved_model.pb; supported: files ending in "
            f"{', '.join(SUFFIXES)} or a TensorFlow SavedModel directory",
            path=str(path),
            found="directory",
        )
    suffix = suffix_of(path)
    if suffix:
        return SUFFIXES[suffix]
    found = _sniff(path)
    if found in SUFFIXES.values():
        return found
    raise UnsupportedFramework(
        f"cannot tell the framework of {path.name} ({found}); supported: files ending in "
        f"{', '.join(SUFFIXES)}, a TensorFlow SavedModel directory, or 'framework' in serveml.json",
        path=str(path),
        found=found,
        supported_suffixes=list(SUFFIXES),
    )


def _sniff(path: Path) -> str:
    """A framework name from the file's first bytes, else a description of what it is."""
    try:
        with path.open("rb") as handle:
            head = handle.read(8)
    except OSError as exc:
        return f"unreadable: {exc.strerror or exc}"
    if head.startswith(_HDF5_MAGIC):
        return "tensorflow"
    if head.startswith(_GZIP_MAGIC):
        return "sklearn"
    if head[:1] == bytes([_PICKLE_PROTO]):
        return "sklearn"
    if head.startswith(_ZIP_MAGIC):
        return _sniff_zip(path)
    return "unknown file type" if head else "empty file"


def _sniff_zip(path: Path) -> str:
    import zipfile  # only files whose name says nothing get this far

    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return "damaged zip archive"
    leaves = {name.rsplit("/", 1)[-1] for name in names}
    if "model.weights.h5" in leaves and "config.json" in leaves:
        return "tensorflow"
    if "schema.json" in leaves:
        return "sklearn"  # skops archive
    # TorchScript and torch.save archives hold data.pkl / constants.pkl; torch.export's .pt2 archive_format
    if leaves & {"data.pkl", "constants.pkl", "archive_format"}:
        return "pytorch"
    return "zip archive of unknown layout"
