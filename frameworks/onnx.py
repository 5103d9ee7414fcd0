"""ONNX models, run with onnxruntime on the CPU.

A classifier's model may say in its metadata (``serveml build --optimize onnx`` writes it) which
output holds class probabilities and what the classes are: that output is then given only when
probabilities are asked for, with ``classes`` naming its columns, as the scikit-learn adapter does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from frameworks.base import Adapter, LoadOptions, Prediction
from runtime.contract import Contract, TensorSpec
from runtime.errors import InvalidInput, ModelLoadFailed

#: Metadata key naming the output that holds class probabilities, given only on request.
PROBABILITIES_KEY = "serveml.probabilities_output"
#: Metadata key holding the class labels (a JSON list) in the order of the probability columns.
CLASSES_KEY = "serveml.classes"


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
        self._on_request: set[str] = set()
        self._classes: list[Any] | None = None
        self._read_metadata()
        self._contract = _contract_of(self.session)
        # Made once: per call, comprehensions cost more than a small model's run.
        self._single_input = len(self._input_names) == 1
        self._all_outputs = list(self._output_names)
        self._default_outputs = [n for n in self._output_names if n not in self._on_request]
        # Plain tensors come back from session.run as the numpy arrays the response needs.
        kinds = {o.name: o.type for o in self.session.get_outputs()}
        self._defaults_are_tensors = all(kinds[n].startswith("tensor(") for n in self._default_outputs)

    def _read_metadata(self) -> None:
        metadata: dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map)
        named = metadata.get(PROBABILITIES_KEY)
        if named is not None and named in self._output_names and len(self._output_names) > 1:
            self._probability_output = named
            self._on_request = {named}
        if CLASSES_KEY in metadata:
            try:
                classes = json.loads(metadata[CLASSES_KEY])
            except ValueError as exc:
                raise ModelLoadFailed(
                    f"cannot load onnx model {self.path}: metadata {CLASSES_KEY} is not JSON: {exc}",
                    path=str(self.path),
                    cause=str(exc),
                ) from exc
            if not isinstance(classes, list):
                raise ModelLoadFailed(
                    f"cannot load onnx model {self.path}: metadata {CLASSES_KEY} must be a JSON list",
                    path=str(self.path),
                    cause=f"{CLASSES_KEY} is {type(classes).__name__}",
                )
            self._classes = classes

    def predict(self, inputs: Mapping[str, np.ndarray[Any, Any]], *, probabilities: bool = False) -> Prediction:
        if probabilities and self._probability_output is None:
            raise InvalidInput(
                f"this model gives no class probabilities (no output named like 'probabilities'; "
                f"outputs: {', '.join(self._output_names)})"
            )
        wanted = self._all_outputs if probabilities else self._default_outputs
        feed = (
            {self._input_names[0]: inputs[self._input_names[0]]}
            if self._single_input
            else {n: inputs[n] for n in self._input_names}
        )
        raw = self.session.run(wanted, feed)
        if not probabilities and self._defaults_are_tensors:
            return Prediction(outputs=dict(zip(wanted, raw, strict=True)))
        result = Prediction(outputs={})
        for name, value in zip(wanted, raw, strict=True):
            keys: list[Any] | None = None
            if isinstance(value, list) and value and isinstance(value[0], dict):
                # skl2onnx's ZipMap: one {class: probability} dict per row.
                keys = sorted(value[0])
                result.outputs[name] = np.array([[row[k] for k in keys] for row in value], dtype=np.float32)
            else:
                result.outputs[name] = np.asarray(value)
            if probabilities and name == self._probability_output:
                result.probabilities = result.outputs[name]
                result.classes = keys if keys is not None else self._classes
            if name in self._on_request:
                del result.outputs[name]
        return result

    @property
    def versions(self) -> dict[str, str]:
        return {"onnxruntime": str(ort.__version__)}

    @property
    def classes(self) -> list[Any] | None:
        return self._classes


def _contract_of(session: Any) -> Contract | None:
    specs: list[TensorSpec] = []
    for arg in session.get_inputs():
        shape = [d if isinstance(d, int) and d > 0 else -1 for d in (arg.shape or [])]
        try:
            specs.append(TensorSpec(arg.name, str(arg.type), tuple(shape)))
        except ValueError:
            return None  # a sequence/map input, a scalar, or a dtype the contract cannot name
    return Contract.of(specs) if specs else None
