"""ONNX models, run with onnxruntime on the CPU."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from frameworks.base import Adapter, LoadOptions, Prediction
from runtime.contract import Contract, TensorSpec
from runtime.errors import InvalidInput, ModelLoadFailed


class OnnxAdapter(Adapter):
    name = "onnx"

    def __init__(self, path: Path, options: LoadOptions) -> None:
        super().__init__(path, options)
        settings = ort.SessionOptions()
        settings.intra_op_num_threads = options.threads
        settings.inter_op_num_threads = 1
        settings.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(str(path), settings, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ModelLoadFailed(f"cannot load onnx model {path}: {exc}", path=str(path), cause=str(exc)) from exc
        self._input_names = [i.name for i in self.session.get_inputs()]
        self._output_names = [o.name for o in self.session.get_outputs()]
        self._probability_output = next((n for n in self._output_names if "prob" in n.lower()), None)
        self._contract = _contract_of(self.session)

    def predict(self, inputs: Mapping[str, np.ndarray[Any, Any]], *, probabilities: bool = False) -> Prediction:
        if probabilities and self._probability_output is None:
            raise InvalidInput(
                f"this model gives no class probabilities (no output named like 'probabilities'; "
                f"outputs: {', '.join(self._output_names)})"
            )
        raw = self.session.run(self._output_names, {name: inputs[name] for name in self._input_names})
        result = Prediction(outputs={})
        for name, value in zip(self._output_names, raw, strict=True):
            keys: list[Any] | None = None
            if isinstance(value, list) and value and isinstance(value[0], dict):
                # skl2onnx's ZipMap: one {class: probability} dict per row.
                keys = sorted(value[0])
                result.outputs[name] = np.array([[row[k] for k in keys] for row in value], dtype=np.float32)
            else:
                result.outputs[name] = np.asarray(value)
            if probabilities and name == self._probability_output:
                result.probabilities = result.outputs[name]
                result.classes = keys
        return result

    @property
    def versions(self) -> dict[str, str]:
        return {"onnxruntime": str(ort.__version__)}


def _contract_of(session: Any) -> Contract | None:
    specs: list[TensorSpec] = []
    for arg in session.get_inputs():
        shape = [d if isinstance(d, int) and d > 0 else -1 for d in (arg.shape or [])]
        try:
            specs.append(TensorSpec(arg.name, str(arg.type), tuple(shape)))
        except ValueError:
            return None  # a sequence/map input, a scalar, or a dtype the contract cannot name
    return Contract.of(specs) if specs else None
