"""Export a trained run's fold models as self-contained TorchScript or ONNX files.

    hms export --run runs/b0 --format onnx [--out-dir runs/b0/export/onnx]

Per fold ``k``: ``fold<k>.onnx`` (or ``fold<k>.pt``, TorchScript) maps a float32 batch of model
inputs (B, C, H, W) to the six class probabilities (B, 6) in :data:`hms.CLASSES` order, and
``fold<k>.json`` is its input spec: the input's name, shape and layout, and the input pipeline's
full state (recipe parameters and normalization statistics), from which ``hms.inputs`` rebuilds
the preprocessing (``InputPipeline.from_state(spec["pipeline"], None).transform_windows(...)``).
``export.json`` lists the folds; the run's own prediction is the mean over them.

ONNX needs the ``[export]`` extra (onnx, onnxscript); TorchScript needs nothing more (it is
deprecated in recent PyTorch for Python use, but is what libtorch loads from C++).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hms import CLASSES, __version__
from hms.cli import add_progress_option, command, parse_command
from hms.inference import load_run
from hms.io import atomic_output, write_json_atomic
from hms.progress import bar as progress_bar
from hms.rundir import require_writable_folder

FORMATS = {"torchscript": ".pt", "onnx": ".onnx"}
MANIFEST_FILE = "export.json"
INPUT_NAME, OUTPUT_NAME = "inputs", "probabilities"


class Probabilities(nn.Module):
    """A fold model whose output is the class probabilities (what a submission holds)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.model(inputs).softmax(dim=1)


def _write_torchscript(module: nn.Module, example: torch.Tensor, path: Path) -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.jit.*deprecated", category=Warning)
        traced = torch.jit.trace(module, example)
    with atomic_output(path) as tmp:
        traced.save(str(tmp))


def _write_onnx(module: nn.Module, example: torch.Tensor, path: Path) -> None:
    try:
        import onnx  # noqa: F401 - torch.onnx needs it; fail here with what to install
        import onnxscript  # noqa: F401
    except ImportError as exc:
        raise NotImplementedError(
            f"--format onnx needs the export extra (pip install 'hms-eeg[export]'): {exc}"
        ) from None
    with atomic_output(path) as tmp:
        torch.onnx.export(
            module,
            (example,),
            str(tmp),
            dynamo=True,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes={"inputs": {0: torch.export.Dim("batch")}},
            verbose=False,
        )


def export_run(run: str | os.PathLike, fmt: str, out_dir: str | os.PathLike | None = None) -> Path:
    """Writes every fold of ``run`` in ``fmt`` ("torchscript" or "onnx") with its input spec;
    returns the folder (default ``<run>/export/<fmt>``)."""
    if fmt not in FORMATS:
        raise ValueError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    loaded = load_run(run, None)
    out = Path(out_dir) if out_dir is not None else loaded.path / "export" / fmt
    require_writable_folder(out, MANIFEST_FILE, "--out-dir")
    write = _write_torchscript if fmt == "torchscript" else _write_onnx
    folds: list[dict[str, Any]] = []
    for fm in progress_bar(loaded.folds, desc=f"export {fmt}", unit="fold"):
        shape = fm.pipeline.input_shape
        module = Probabilities(fm.model).eval()
        model_file = f"fold{fm.fold}{FORMATS[fmt]}"
        with torch.no_grad():
            write(module, torch.zeros((2, *shape)), out / model_file)
        spec = {
            "format": fmt,
            "fold": fm.fold,
            "model": model_file,
            "input": {"name": INPUT_NAME, "dtype": "float32", "shape": ["batch", *shape], "layout": fm.pipeline.layout},
            "output": {"name": OUTPUT_NAME, "shape": ["batch", len(CLASSES)], "classes": list(CLASSES)},
            "pipeline": fm.pipeline.state_dict(),
        }
        write_json_atomic(out / f"fold{fm.fold}.json", spec)
        folds.append({"fold": fm.fold, "model": model_file, "spec": f"fold{fm.fold}.json"})
    manifest = {
        "run": str(loaded.path.resolve()),
        "format": fmt,
        "folds": folds,
        "combine": "mean of the folds' probabilities",
        "hms": __version__,
        "torch": torch.__version__,
    }
    write_json_atomic(out / MANIFEST_FILE, manifest)  # last: its presence marks a complete export
    return out


def read_manifest(folder: str | os.PathLike) -> dict[str, Any]:
    path = Path(folder) / MANIFEST_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; is {folder} an hms export?")
    return json.loads(path.read_text())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hms export", description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, metavar="RUN_DIR", help="a trained run")
    parser.add_argument("--format", required=True, choices=tuple(FORMATS), help="file format of the fold models")
    parser.add_argument("--out-dir", metavar="DIR", help="output folder [default: RUN_DIR/export/FORMAT]")
    add_progress_option(parser)
    return parser


@command
def main(argv: Sequence[str] | None = None) -> int:
    args = parse_command(build_parser(), argv)
    out = export_run(args.run, args.format, args.out_dir)
    print(f"{out}: {len(read_manifest(out)['folds'])} fold model(s) as {args.format}, each with its input spec")
    return 0


if __name__ == "__main__":
    sys.exit(main())
