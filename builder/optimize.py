"""``serveml build --optimize onnx``: convert a model to ONNX, and keep it only if it predicts the same.

``convert_to_onnx`` runs ``python -m builder.optimize`` in a fresh interpreter (as ``builder.check``
does), so that importing torch, TensorFlow or a converter costs the build process nothing, and
under a time limit. That process:

1. loads the original with ServeML's own runtime (``runtime.service.load_service``), exactly as
   it will be served;
2. converts it: scikit-learn with skl2onnx (classifiers with ``zipmap=False``, so probabilities
   are a tensor), TorchScript with torch.onnx's TorchScript exporter, ``torch.export`` programs
   and pickled modules with torch.onnx's ``torch.export``-based exporter (``dynamo=True``), Keras
   ``.keras``/``.h5`` with Keras's own ONNX exporter and SavedModel signatures with tf2onnx;
   every input keeps its name and dtype and a dynamic batch axis;
3. renames the outputs to what the original's adapter calls them (a 1-column regressor output
   becomes one value per row, as scikit-learn gives it) and, for a classifier, records in the
   model's metadata which output holds the probabilities and what the classes are, so that
   ``frameworks.onnx`` answers in the same shape as the original;
4. checks parity: both models predict on ``SAMPLE_ROWS`` seeded random rows drawn from the input
   contract; labels must be equal, and every number within ``atol + rtol * |original|``.

Any failure is an ``OptimizeError`` saying why: no converter for this model, the export failed,
the converted model's inputs differ, or parity failed (with the max abs diff and the tolerance).
"""

# ruff: noqa: PLC0415 - each framework and its converter is imported only by the conversion that needs it

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from builder.check import run_isolated
from frameworks import LoadOptions, adapter_class
from runtime.contract import Contract
from runtime.errors import ServeMLError
from runtime.service import load_service

#: Rows of the parity sample, and its seed: the same sample every build.
SAMPLE_ROWS = 64
SAMPLE_SEED = 0
#: Seconds the conversion process may take (TensorFlow's import alone takes several).
DEFAULT_TIMEOUT_S = 600.0
#: The file the converted model is written to.
ONNX_NAME = "model.onnx"
#: Metadata keys the ONNX adapter reads (see ``frameworks.onnx``); kept in step with it.
PROBABILITIES_KEY = "serveml.probabilities_output"
CLASSES_KEY = "serveml.classes"


class OptimizeError(Exception):
    """The model was not converted, or the converted model was not accepted; the message says why."""

    def __init__(self, message: str, *, max_abs_diff: float | None = None) -> None:
        super().__init__(message)
        self.max_abs_diff = max_abs_diff


@dataclass(frozen=True, slots=True)
class Tolerance:
    """How far a converted model's numbers may be from the original's: ``|converted - original| <=
    atol + rtol * |original|``, element by element. Labels and other non-float outputs must be equal."""

    rtol: float = 1e-4
    atol: float = 1e-5

    def __str__(self) -> str:
        return f"atol {self.atol:g} + rtol {self.rtol:g} x |original|"


#: float32 graphs from the frameworks' exporters reorder a few sums: 1e-5 absolute and 1e-4 relative
#: leave room for that and for nothing a user would notice.
DEFAULT_TOLERANCE = Tolerance(rtol=1e-4, atol=1e-5)


@dataclass(frozen=True, slots=True)
class Conversion:
    """An accepted conversion."""

    onnx_path: Path
    framework: str
    converter: str
    converter_version: str
    sample_rows: int
    max_abs_diff: float
    tolerance: Tolerance
    seconds: float

    @property
    def converter_label(self) -> str:
        return f"{self.converter} {self.converter_version}"

    def describe(self) -> str:
        return (
            f"{self.onnx_path.name} by {self.converter_label}: max abs diff {self.max_abs_diff:.2g} "
            f"on {self.sample_rows} sample rows (tolerance {self.tolerance})"
        )

    def manifest_entry(self, original_file: str, sha256: str | None) -> dict[str, Any]:
        """What ``serveml.json``'s ``converted_from`` records about the original."""
        entry: dict[str, Any] = {
            "framework": self.framework,
            "file": original_file,
            "converter": self.converter_label,
            "max_abs_diff": self.max_abs_diff,
            "tolerance": {"rtol": self.tolerance.rtol, "atol": self.tolerance.atol},
            "sample_rows": self.sample_rows,
        }
        if sha256 is not None:
            entry["sha256"] = sha256
        return entry


def convert_to_onnx(
    model: Path,
    framework: str,
    contract: Contract,
    out_dir: Path,
    *,
    tolerance: Tolerance = DEFAULT_TOLERANCE,
    rows: int = SAMPLE_ROWS,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> Conversion:
    """Convert the model at ``model`` (a path ``load_service`` takes) to ``out_dir/model.onnx`` in a
    fresh interpreter and check parity on ``rows`` rows made from ``contract``."""
    _check_contract(contract)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="serveml-optimize-") as scratch:
        job = {
            "model": str(model),
            "framework": framework,
            "inputs": [spec.to_json() for spec in contract.inputs],
            "out": str(out_dir / ONNX_NAME),
            "tolerance": asdict(tolerance),
            "rows": rows,
        }
        (Path(scratch) / "job.json").write_text(json.dumps(job))
        report = run_isolated(
            "builder.optimize",
            [str(Path(scratch) / "job.json")],
            timeout_s=timeout_s,
            failure=lambda why: OptimizeError(f"export failed: {why}"),
            doing="converting",
            env={"TF_CPP_MIN_LOG_LEVEL": "2"},
        )
    if not report["ok"]:
        raise OptimizeError(report["reason"], max_abs_diff=report.get("max_abs_diff"))
    return Conversion(
        onnx_path=Path(report["onnx_path"]),
        framework=framework,
        converter=report["converter"],
        converter_version=report["converter_version"],
        sample_rows=rows,
        max_abs_diff=report["max_abs_diff"],
        tolerance=tolerance,
        seconds=round(time.perf_counter() - started, 2),
    )


def _check_contract(contract: Contract) -> None:
    if contract.source == "none" or any(spec.any_shape for spec in contract.inputs):
        raise OptimizeError(
            "the model does not say its input shapes, so no parity sample can be made; "
            "give them as inputs in serveml.json"
        )
    strings = [spec.name for spec in contract.inputs if spec.np_dtype.kind == "O"]
    if strings:
        raise OptimizeError(f"string inputs ({', '.join(strings)}) are not converted; the original is kept")
    if contract.tabular and len(contract.inputs) > 1:
        raise OptimizeError(
            "a model that takes rows keyed by feature name (a DataFrame pipeline) is not converted: "
            "its ONNX form would take another request shape"
        )


# -- the parity sample and the comparison ------------------------------------------------------


def sample_inputs(
    contract: Contract, rows: int = SAMPLE_ROWS, seed: int = SAMPLE_SEED
) -> dict[str, np.ndarray[Any, Any]]:
    """Seeded random inputs of ``rows`` rows in the contract's shapes and dtypes (free axes: size 2)."""
    rng = np.random.default_rng(seed)
    inputs: dict[str, np.ndarray[Any, Any]] = {}
    for spec in contract.inputs:
        shape = (rows, *(d if d > 0 else 2 for d in spec.row_shape))
        dtype = spec.np_dtype
        if dtype.kind == "f":
            inputs[spec.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind in "iu":
            inputs[spec.name] = rng.integers(0, 10, size=shape).astype(dtype)
        elif dtype.kind == "b":
            inputs[spec.name] = rng.random(shape) < 0.5
        else:
            raise OptimizeError(f"input {spec.name!r}: no parity sample can be made for dtype {spec.dtype}")
    return inputs


def compare(
    original: Mapping[str, np.ndarray[Any, Any]],
    converted: Mapping[str, np.ndarray[Any, Any]],
    tolerance: Tolerance,
    rows: int,
) -> float:
    """The max abs diff between two sets of named outputs; ``OptimizeError`` where they differ
    beyond ``tolerance``, in names, shapes or labels."""
    if list(original) != list(converted):
        raise OptimizeError(
            f"parity failed: the converted model's outputs ({', '.join(converted)}) are not the original's "
            f"({', '.join(original)})"
        )
    worst = 0.0
    for name, want in original.items():
        got = converted[name]
        if want.shape != got.shape:
            raise OptimizeError(
                f"parity failed: output {name!r} has shape {list(got.shape)}, the original {list(want.shape)}"
            )
        if want.dtype.kind not in "fc" or got.dtype.kind not in "fc":
            differ = np.flatnonzero(np.asarray(want.tolist(), dtype=object) != np.asarray(got.tolist(), dtype=object))
            if differ.size:
                first = int(differ[0])
                raise OptimizeError(
                    f"parity failed: {differ.size} of {want.size} values of {name!r} differ on {rows} sample rows "
                    f"(first: {want.reshape(-1).tolist()[first]!r} became {got.reshape(-1).tolist()[first]!r})",
                    max_abs_diff=None,
                )
            continue
        a, b = got.astype(np.float64), want.astype(np.float64)
        nan_a, nan_b = np.isnan(a), np.isnan(b)
        if (nan_a != nan_b).any():
            raise OptimizeError(f"parity failed: output {name!r} has NaN where the original has none, or back")
        diff = np.where(nan_a, 0.0, np.abs(a - b))
        allowed = tolerance.atol + tolerance.rtol * np.abs(np.where(nan_b, 0.0, b))
        worst = max(worst, float(diff.max(initial=0.0)))
        over = diff > allowed
        if over.any():
            index = np.unravel_index(int(np.argmax(np.where(over, diff, -1.0))), diff.shape)
            raise OptimizeError(
                f"parity failed: max abs diff {float(diff[index]):.3g} > tolerance {float(allowed[index]):.3g} "
                f"({tolerance}) in {name!r} on {rows} sample rows",
                max_abs_diff=float(diff.max()),
            )
    return worst


# -- the conversion process --------------------------------------------------------------------


@dataclass(slots=True)
class _Exported:
    converter: str
    version: str
    #: Output names of the ONNX graph as exported, mapped to the names the original's adapter gives.
    renames: dict[str, str]
    probabilities: str | None = None
    classes: list[Any] | None = None


def _run(job: dict[str, Any]) -> dict[str, Any]:
    contract = Contract.from_json(job["inputs"], source="model")
    tolerance = Tolerance(**job["tolerance"])
    rows = int(job["rows"])
    out = Path(job["out"])
    try:
        service = load_service(Path(job["model"]))
    except ServeMLError as error:
        raise OptimizeError(f"export failed: the original did not load: {error.code}: {error.message}") from error
    if service.adapter.name != job["framework"]:
        raise OptimizeError(f"export failed: the model loaded as {service.adapter.name}, not {job['framework']}")
    inputs = sample_inputs(contract, rows)
    adapter = service.adapter
    classifier = job["framework"] == "sklearn" and _is_classifier(getattr(adapter, "model", None))
    original = adapter.predict(inputs, probabilities=classifier)
    exporters = {"sklearn": _export_sklearn, "pytorch": _export_torch, "tensorflow": _export_tensorflow}
    if job["framework"] not in exporters:
        raise OptimizeError(f"no converter to ONNX for {job['framework']} models")
    exported = exporters[job["framework"]](adapter, contract, list(original.outputs), out)
    _finish(out, exported, original.outputs, classifier)

    onnx_adapter = adapter_class("onnx")(out, LoadOptions())
    found = onnx_adapter.contract
    if found is None or _specs(found) != _specs(contract):
        raise OptimizeError(
            f"export failed: the ONNX model takes {_describe(found)}, the original {_describe(contract)}"
        )
    converted = onnx_adapter.predict(inputs, probabilities=classifier)
    max_abs_diff = compare(original.outputs, converted.outputs, tolerance, rows)
    if classifier:
        if converted.probabilities is None or original.probabilities is None:
            raise OptimizeError("parity failed: the converted classifier gives no probabilities")
        if converted.classes != original.classes:
            raise OptimizeError(
                f"parity failed: the converted classifier's classes {converted.classes} "
                f"are not the original's {original.classes}"
            )
        max_abs_diff = max(
            max_abs_diff,
            compare(
                {"probabilities": original.probabilities},
                {"probabilities": converted.probabilities},
                tolerance,
                rows,
            ),
        )
    return {
        "ok": True,
        "onnx_path": str(out),
        "converter": exported.converter,
        "converter_version": exported.version,
        "max_abs_diff": max_abs_diff,
    }


def _specs(contract: Contract) -> list[tuple[str, str, tuple[int, ...]]]:
    return [(s.name, s.dtype, s.shape) for s in contract.inputs]


def _describe(contract: Contract | None) -> str:
    if contract is None:
        return "inputs the contract cannot describe"
    return ", ".join(f"{s.name} {s.dtype} {list(s.shape)}" for s in contract.inputs)


def _export_sklearn(adapter: Any, contract: Contract, names: list[str], out: Path) -> _Exported:
    import onnx
    import onnxruntime as ort
    import skl2onnx
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType, Int64TensorType
    from skl2onnx.common.exceptions import MissingConverter, MissingShapeCalculator

    estimator = adapter.model
    classifier = _is_classifier(estimator)
    options = {"zipmap": False} if classifier else None
    (spec,) = contract.inputs
    shape: list[int | None] = [None, *spec.row_shape]
    kinds = {"float64": [DoubleTensorType, FloatTensorType], "float32": [FloatTensorType]}
    attempts = kinds.get(spec.dtype, [Int64TensorType] if spec.np_dtype.kind in "iu" else [])
    if not attempts:
        raise OptimizeError(f"no converter for this estimator: skl2onnx takes no {spec.dtype} input")
    failure = ""
    for tensor_type in attempts:
        try:
            model = skl2onnx.convert_sklearn(
                estimator, initial_types=[(spec.name, tensor_type(shape))], options=options
            )
        except (MissingShapeCalculator, MissingConverter) as exc:
            raise OptimizeError(
                f"no converter for this estimator: skl2onnx {skl2onnx.__version__} cannot convert "
                f"{_estimator_name(estimator)} ({_first_line(exc)})"
            ) from exc
        except Exception as exc:
            if "not supported" in str(exc):
                raise OptimizeError(
                    f"no converter for this estimator: skl2onnx {skl2onnx.__version__}: {_first_line(exc)}"
                ) from exc
            failure = f"{type(exc).__name__}: {_first_line(exc)}"
            continue
        if tensor_type is FloatTensorType and spec.dtype == "float64":
            model = _cast_inputs(model, onnx.TensorProto.DOUBLE)
        try:  # some converters write a double graph that onnxruntime refuses: try float32 next
            ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        except Exception as exc:
            failure = f"onnxruntime refused the graph: {_first_line(exc)}"
            continue
        onnx.save(model, str(out))
        outputs = [o.name for o in model.graph.output]
        probabilities = "probabilities" if classifier and "probabilities" in outputs else None
        primary = next(o for o in outputs if o != probabilities)
        return _Exported(
            "skl2onnx",
            skl2onnx.__version__,
            {primary: names[0]},
            probabilities=probabilities,
            classes=np.asarray(estimator.classes_).tolist() if classifier else None,
        )
    raise OptimizeError(f"export failed: skl2onnx {skl2onnx.__version__}: {failure}")


def _is_classifier(estimator: Any) -> bool:
    """A scikit-learn model that gives class probabilities, which the response carries on request."""
    return hasattr(estimator, "predict_proba") and hasattr(estimator, "classes_")


def _estimator_name(estimator: Any) -> str:
    steps = getattr(estimator, "steps", None)
    if steps:
        return f"{type(estimator).__name__}({', '.join(type(step).__name__ for _, step in steps)})"
    return type(estimator).__name__


def _export_torch(adapter: Any, contract: Contract, names: list[str], out: Path) -> _Exported:
    import torch

    path: Path = adapter.path
    example = tuple(torch.from_numpy(a) for a in sample_inputs(contract, 2, SAMPLE_SEED + 1).values())
    input_names = list(contract.names)
    model = adapter.model
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if isinstance(model, torch.jit.ScriptModule):
                # TorchScript cannot go through torch.export: the TorchScript-based exporter takes it.
                torch.onnx.export(
                    model,
                    example,
                    str(out),
                    input_names=input_names,
                    output_names=names,
                    dynamic_axes={name: {0: "batch"} for name in [*input_names, *names]},
                    dynamo=False,
                )
                how = "torch.onnx (TorchScript exporter)"
            else:
                if path.name.lower().endswith(".pt2"):
                    program: Any = torch.export.load(path)  # keeps the program's own dynamic shapes
                    dynamic: Any = None
                else:
                    program = model
                    batch = torch.export.Dim("batch")
                    dynamic = tuple({0: batch} for _ in input_names)
                onnx_program = torch.onnx.export(
                    program,
                    example,
                    input_names=input_names,
                    output_names=names,
                    dynamic_shapes=dynamic,
                    dynamo=True,
                    verbose=False,
                )
                if onnx_program is None:
                    raise OptimizeError("export failed: torch.onnx.export returned no program")
                onnx_program.save(str(out), external_data=False)
                how = "torch.onnx (dynamo exporter)"
    except OptimizeError:
        raise
    except Exception as exc:
        raise OptimizeError(f"export failed: torch.onnx {torch.__version__}: {_first_line(exc)}") from exc
    return _Exported(how, torch.__version__, {})


def _export_tensorflow(adapter: Any, contract: Contract, names: list[str], out: Path) -> _Exported:
    import keras
    import tensorflow as tf
    import tf2onnx

    specs = [tf.TensorSpec([None, *s.row_shape], tf.as_dtype(s.np_dtype), name=s.name) for s in contract.inputs]
    try:
        if adapter.signature is None:
            # Keras's own exporter: tf2onnx on the model's call, with Keras's numpy 2 fixes for tf2onnx.
            signature: list[Any] = list(specs) if len(specs) == 1 else [list(specs)]
            adapter.model.export(str(out), format="onnx", input_signature=signature, verbose=False)
            how = "keras.export + tf2onnx"
        else:
            from keras.src.export.tf2onnx_lib import patch_tf2onnx

            patch_tf2onnx()  # tf2onnx 1.17 still calls numpy 1 APIs; Keras's exporter patches them the same way
            function = adapter.signature

            @tf.function(input_signature=specs)  # type: ignore[untyped-decorator]
            def serve(*args: Any) -> Any:
                return function(**dict(zip(contract.names, args, strict=True)))

            tf2onnx.convert.from_function(serve, input_signature=specs, output_path=str(out))
            how = "tf2onnx"
    except Exception as exc:
        raise OptimizeError(f"export failed: tf2onnx {tf2onnx.__version__}: {_first_line(exc)}") from exc
    return _Exported(how, f"{tf2onnx.__version__} (keras {keras.__version__})", {})


def _finish(out: Path, exported: _Exported, original: Mapping[str, np.ndarray[Any, Any]], classifier: bool) -> None:
    """Give the graph's outputs the original's names and shapes, drop outputs the original does not
    give, and record a classifier's probabilities output and classes in the metadata."""
    import onnx
    import onnxruntime as ort
    from onnx import helper

    model = onnx.load(str(out))
    graph = model.graph
    wanted = list(original)
    mapping = _output_mapping([o.name for o in graph.output if o.name != exported.probabilities], wanted, exported)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    ranks = {o.name: len(o.shape or []) for o in session.get_outputs()}
    declared = {o.name: o for o in graph.output}
    renamed: list[Any] = []
    for source, target in sorted(mapping.items(), key=lambda item: wanted.index(item[1])):
        flatten = original[target].ndim == 1 and ranks.get(source) == 2
        if source == target and not flatten:
            renamed.append(declared[source])
        else:
            renamed.append(_alias_output(graph, declared[source], target, flatten))
    if exported.probabilities:
        renamed.append(declared[exported.probabilities])
    del graph.output[:]
    graph.output.extend(renamed)
    metadata = {}
    if classifier and exported.probabilities:
        metadata[PROBABILITIES_KEY] = exported.probabilities
    if exported.classes is not None:
        metadata[CLASSES_KEY] = json.dumps(exported.classes)
    if metadata:
        helper.set_model_props(model, {**{p.key: p.value for p in model.metadata_props}, **metadata})
    onnx.checker.check_model(model)
    onnx.save(model, str(out))


def _output_mapping(exported_names: list[str], wanted: list[str], exported: _Exported) -> dict[str, str]:
    """Which graph output becomes which of the original's outputs: by the exporter's word, by name, or by position."""
    if exported.renames:
        return dict(exported.renames)
    if set(exported_names) == set(wanted):
        return {name: name for name in wanted}
    if len(exported_names) == len(wanted):
        return dict(zip(exported_names, wanted, strict=True))
    raise OptimizeError(
        f"export failed: the ONNX model gives {len(exported_names)} outputs ({', '.join(exported_names)}), "
        f"the original {len(wanted)} ({', '.join(wanted)})"
    )


def _alias_output(graph: Any, declared: Any, target: str, flatten: bool) -> Any:
    """A new graph output ``target``: the output ``declared`` as it is, or flattened to one value per row."""
    import onnx
    from onnx import helper

    source = declared.name
    taken = {name for node in graph.node for name in node.output} | {i.name for i in graph.input}
    if target != source and target in taken:
        raise OptimizeError(f"export failed: the ONNX graph already has a value named {target!r}")
    inner = source
    if source == target:  # the name is right, the shape is not: its producer takes another name
        inner = f"{source}__serveml"
        for node in graph.node:
            node.input[:] = [inner if name == source else name for name in node.input]
            node.output[:] = [inner if name == source else name for name in node.output]
    elem_type = declared.type.tensor_type.elem_type
    if flatten:
        shape_name = f"{target}__shape"
        graph.initializer.append(helper.make_tensor(shape_name, onnx.TensorProto.INT64, [1], [-1]))
        graph.node.append(helper.make_node("Reshape", [inner, shape_name], [target]))
        return helper.make_tensor_value_info(target, elem_type, ["batch"])
    graph.node.append(helper.make_node("Identity", [inner], [target]))
    dims = [d.dim_param or d.dim_value or None for d in declared.type.tensor_type.shape.dim]
    return helper.make_tensor_value_info(target, elem_type, dims)


def _cast_inputs(model: Any, elem_type: int) -> Any:
    """The graph with each float32 input taken as ``elem_type`` and cast to float32 first."""
    import onnx
    from onnx import helper

    graph = model.graph
    for value in graph.input:
        tensor = value.type.tensor_type
        if tensor.elem_type != onnx.TensorProto.FLOAT:
            continue
        inner = f"{value.name}__float"
        for node in graph.node:
            node.input[:] = [inner if name == value.name else name for name in node.input]
        graph.node.insert(0, helper.make_node("Cast", [value.name], [inner], to=onnx.TensorProto.FLOAT))
        tensor.elem_type = elem_type
    return model


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m builder.optimize")
    parser.add_argument("job", type=Path)
    parser.add_argument("--result", type=Path, required=True)
    args = parser.parse_args(argv)
    job = json.loads(args.job.read_text())
    try:
        report = _run(job)
    except OptimizeError as error:
        report = {"ok": False, "reason": str(error), "max_abs_diff": error.max_abs_diff}
    except Exception as error:  # a converter's own failure, anywhere: the build goes on with the original
        report = {"ok": False, "reason": f"export failed: {type(error).__name__}: {_first_line(error)}"}
    args.result.write_text(json.dumps(report, default=str))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())


__all__ = [
    "DEFAULT_TOLERANCE",
    "SAMPLE_ROWS",
    "Conversion",
    "OptimizeError",
    "Tolerance",
    "compare",
    "convert_to_onnx",
    "sample_inputs",
]
