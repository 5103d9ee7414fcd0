"""What every framework adapter is: load one model file, say its contract, predict.

An adapter module imports its framework at the top: the registry imports that module only when
a model of its framework is served, so serving an ONNX model never imports torch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from runtime.contract import Contract


@dataclass(frozen=True, slots=True)
class LoadOptions:
    """How to load: ``trusted`` allows formats that run code on load (pickled torch modules);
    ``threads`` is the intra-op thread count the framework should use."""

    trusted: bool = False
    threads: int = 1


@dataclass(slots=True)
class Prediction:
    """Named outputs (the first is the primary one: ``predictions``), and class probabilities when
    they were asked for, with ``classes`` naming their columns."""

    outputs: dict[str, np.ndarray[Any, Any]]
    probabilities: np.ndarray[Any, Any] | None = None
    classes: list[Any] | None = field(default=None)


class Adapter(ABC):
    """One loaded model of one framework."""

    #: Registry name: "sklearn", "pytorch", "tensorflow", "onnx".
    name: ClassVar[str]

    def __init__(self, path: Path, options: LoadOptions) -> None:
        self.path = path
        self.options = options
        self._contract: Contract | None = None

    @property
    def contract(self) -> Contract | None:
        """The input contract read off the model, or None where the model does not say."""
        return self._contract

    @abstractmethod
    def predict(self, inputs: Mapping[str, np.ndarray[Any, Any]], *, probabilities: bool = False) -> Prediction:
        """Predict on validated inputs keyed by contract input name (batch axis first).

        With ``probabilities`` the adapter fills ``Prediction.probabilities``; an adapter whose model
        has no class probabilities raises ``runtime.errors.InvalidInput`` saying so."""

    @property
    @abstractmethod
    def versions(self) -> dict[str, str]:
        """Versions of the framework packages in use, e.g. ``{"scikit-learn": "1.9.1"}``."""

    @property
    def classes(self) -> list[Any] | None:
        """Class labels of a classifier, in output order, when the model knows them."""
        return None
