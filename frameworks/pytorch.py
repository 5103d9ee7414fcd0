"""PyTorch models: TorchScript, torch.export programs (.pt2), and pickled modules when trusted."""

from __future__ import annotations

import contextlib
import pickle
import warnings
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from frameworks.base import Adapter, LoadOptions, Prediction
from runtime.contract import Contract, TensorSpec
from runtime.errors import InvalidInput, ModelLoadFailed

# The C guards behind torch.inference_mode() and torch.jit.optimized_execution(): those Python
# context managers cost about 10 µs per call on a cold cache, a quarter of a small model's call.
_inference_mode: Callable[[bool], contextlib.AbstractContextManager[Any]] = getattr(
    torch._C, "_InferenceMode", torch.inference_mode
)
_set_graph_optimize: Callable[[bool], None] = getattr(torch._C, "_set_graph_executor_optimize", lambda enabled: None)


class TorchAdapter(Adapter):
    name = "pytorch"

    def __init__(self, path: Path, options: LoadOptions) -> None:
        super().__init__(path, options)
        torch.set_num_threads(options.threads)
        # Allowed once per process, before any parallel work; a second model keeps the first setting.
        with contextlib.suppress(RuntimeError):
            torch.set_num_interop_threads(1)
        self.model: Callable[..., Any] = self._load()
        self._scripted = isinstance(self.model, torch.jit.ScriptModule)
        self._names = self._contract.names if self._contract is not None else ()

    def _load(self) -> Any:
        path = self.path
        try:
            layout = _zip_entries(path)
            if path.name.lower().endswith(".pt2") or "archive_format" in layout:
                program = torch.export.load(path)
                self._contract = _export_contract(program)
                return program.module()
            if "constants.pkl" in layout or any(n.startswith("code/") for n in layout):
                # TorchScript is deprecated upstream, but a model someone already scripted still serves fine.
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
                    scripted = torch.jit.load(path, map_location="cpu")  # type: ignore[no-untyped-call]
                return scripted.eval()
            return self._load_pickled()
        except ModelLoadFailed:
            raise
        except Exception as exc:
            raise ModelLoadFailed(f"cannot load pytorch model {path}: {exc}", path=str(path), cause=str(exc)) from exc

    def _load_pickled(self) -> Callable[..., Any]:
        path = self.path
        try:
            # weights_only refuses anything but tensors and plain containers: safe to try on any file.
            obj: Any = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            if not self.options.trusted:
                raise ModelLoadFailed(
                    f"cannot load pytorch model {path}: it is a whole module saved with torch.save(model), which "
                    'runs code when loaded; mark it "trusted": true in serveml.json, or save it with '
                    "torch.export.save (.pt2) or torch.jit.save instead",
                    path=str(path),
                    cause=str(exc).splitlines()[0],
                ) from exc
            obj = torch.load(path, map_location="cpu", weights_only=False)
        if isinstance(obj, Mapping):
            raise ModelLoadFailed(
                f"cannot load pytorch model {path}: it holds a state_dict (weights only), which has no "
                "architecture to run; save the model with torch.export.save (.pt2) or torch.jit.save",
                path=str(path),
                cause="state_dict",
            )
        if not isinstance(obj, torch.nn.Module):
            raise ModelLoadFailed(
                f"cannot load pytorch model {path}: expected a torch.nn.Module, got {type(obj).__name__}",
                path=str(path),
                cause=f"not a module: {type(obj).__name__}",
            )
        return obj.eval()

    def predict(self, inputs: Mapping[str, np.ndarray[Any, Any]], *, probabilities: bool = False) -> Prediction:
        if probabilities:
            raise InvalidInput(
                "this model gives no class probabilities; a PyTorch model returns its raw outputs "
                "(apply softmax to them if they are logits)"
            )
        # torch.from_numpy shares memory and warns on read-only arrays, so those are copied.
        args = [
            torch.from_numpy(a if a.flags.writeable else a.copy())
            for a in map(inputs.__getitem__, self._names or inputs)
        ]
        if self._scripted:
            # TorchScript's profiling executor re-optimizes the graph on the second and third calls
            # (milliseconds each, on live requests) and makes the warm-up call 40-60 ms; without it
            # a small model runs as fast, and the warm-up takes about a millisecond. The setting is
            # per thread, and this is the only TorchScript the thread runs.
            _set_graph_optimize(False)
        with _inference_mode(True):
            return Prediction(outputs=_outputs(self.model(*args)))

    @property
    def versions(self) -> dict[str, str]:
        return {"torch": torch.__version__}


def _zip_entries(path: Path) -> set[str]:
    """Entry names of a torch zip archive without their top folder (torch names it after the file)."""
    if not zipfile.is_zipfile(path):
        return set()
    with zipfile.ZipFile(path) as archive:
        return {name.split("/", 1)[-1] for name in archive.namelist()}


def _export_contract(program: torch.export.ExportedProgram) -> Contract | None:
    user_inputs = set(program.graph_signature.user_inputs)
    specs: list[TensorSpec] = []
    for node in program.graph.nodes:
        if node.op != "placeholder" or node.name not in user_inputs:
            continue
        value = node.meta.get("val")
        if not isinstance(value, torch.Tensor) or value.dim() == 0:
            return None  # a non-tensor or scalar argument cannot be described as a batch of rows
        shape = [d if isinstance(d, int) else -1 for d in value.shape]
        shape[0] = -1
        try:
            specs.append(TensorSpec(node.name, str(value.dtype).removeprefix("torch."), tuple(shape)))
        except ValueError:
            return None  # a dtype the contract cannot name (bfloat16, complex): the manifest must say
    return Contract.of(specs) if specs else None


def _outputs(result: Any) -> dict[str, np.ndarray[Any, Any]]:
    if isinstance(result, torch.Tensor):
        return {"output": _numpy(result)}
    if isinstance(result, Mapping):
        return {str(k): _numpy(v) for k, v in result.items()}
    if isinstance(result, list | tuple):
        return {f"output_{i}": _numpy(v) for i, v in enumerate(result)}
    return {"output": np.asarray(result)}


def _numpy(value: Any) -> np.ndarray[Any, Any]:
    if isinstance(value, torch.Tensor):
        try:
            return value.numpy()  # a CPU tensor made under inference mode: no copy, no autograd
        except (RuntimeError, TypeError):
            return value.detach().cpu().numpy()
    return np.asarray(value)
