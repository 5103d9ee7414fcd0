"""The framework registry: one adapter per framework, imported on first use.

Adding a framework is one module with an ``Adapter`` subclass, one line in ``ADAPTERS`` (and its
file suffixes in ``frameworks.detect``), and one subclass of the contract test suite.
"""

from __future__ import annotations

import importlib

from frameworks.base import Adapter, LoadOptions, Prediction
from runtime.errors import ModelLoadFailed, UnsupportedFramework

#: Framework name -> "module:Class" of its adapter.
ADAPTERS: dict[str, str] = {
    "sklearn": "frameworks.sklearn:SklearnAdapter",
    "pytorch": "frameworks.pytorch:TorchAdapter",
    "tensorflow": "frameworks.tensorflow:KerasAdapter",
    "onnx": "frameworks.onnx:OnnxAdapter",
}

#: What to install when a framework's package is missing.
EXTRAS: dict[str, str] = {
    "sklearn": "scikit-learn joblib skops",
    "pytorch": "torch",
    "tensorflow": "tensorflow-cpu",
    "onnx": "onnxruntime",
}

_ALIASES = {
    "scikit-learn": "sklearn",
    "torch": "pytorch",
    "keras": "tensorflow",
    "tf": "tensorflow",
    "onnxruntime": "onnx",
}

__all__ = ["ADAPTERS", "Adapter", "LoadOptions", "Prediction", "adapter_class", "framework_name"]


def framework_name(name: str) -> str:
    """The registry name for a framework spelling, or ``UNSUPPORTED_FRAMEWORK``."""
    key = _ALIASES.get(name.strip().lower(), name.strip().lower())
    if key not in ADAPTERS:
        raise UnsupportedFramework(
            f"framework {name!r} is not supported; supported: {', '.join(ADAPTERS)}",
            found=name,
            supported=list(ADAPTERS),
        )
    return key


def adapter_class(name: str) -> type[Adapter]:
    """Import and return the adapter class of a framework."""
    key = framework_name(name)
    module_name, _, class_name = ADAPTERS[key].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ModelLoadFailed(
            f"the {key} adapter needs a package that is not installed ({exc.name or exc}); "
            f"install it with: pip install {EXTRAS[key]}",
            framework=key,
            missing=exc.name,
        ) from exc
    cls: type[Adapter] = getattr(module, class_name)
    return cls
