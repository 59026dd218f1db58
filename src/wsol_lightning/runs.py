"""Where a run lives: a stable run directory, its ``last.ckpt``, and a closing note of where outputs went.

The run directory is ``trainer.default_root_dir`` when the config or the command line sets it, else
``runs/<config stem>`` (``runs/cam_cub`` for ``-c configs/cam_cub.yaml``; several ``-c`` files join their
stems with ``+``), else ``runs/<method>_<data>`` (``runs/cam_synthetic`` for ``--model CAM --data
SyntheticDataModule``). It does not change from one invocation to the next, so ``<run dir>/checkpoints/
last.ckpt`` (written by :class:`~wsol_lightning.callbacks.LastCheckpoint`) is found again by the same command
with ``--ckpt_path last``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import BasePredictionWriter, ModelCheckpoint

RUNS_ROOT = Path("runs")
CHECKPOINTS = "checkpoints"
LAST_PATTERN = re.compile(r"^last(-v?\d+)?\.ckpt$")


class NoLastCheckpointError(FileNotFoundError):
    """``--ckpt_path last`` was given but no ``last*.ckpt`` exists where this run writes them."""


def run_directory(default_root_dir: str | Path | None, config_files: Sequence[str | Path] = (),
                  model_class: str | None = None, data_class: str | None = None) -> Path:
    """The stable folder of a run (see the module docstring).

    Args:
        default_root_dir: ``trainer.default_root_dir`` when set by the user (wins).
        config_files: the ``--config`` files, in order.
        model_class: the model's class path or name (``wsol_lightning.methods.CAM``).
        data_class: the datamodule's class path or name.

    """
    if default_root_dir:
        return Path(default_root_dir)
    if config_files:
        return RUNS_ROOT / "+".join(Path(str(f)).stem for f in config_files)
    method = (model_class or "model").rpartition(".")[2].lower()
    data = (data_class or "data").rpartition(".")[2].removesuffix("DataModule").lower() or "data"
    return RUNS_ROOT / f"{method}_{data}"


def find_last_checkpoint(folders: Iterable[str | Path]) -> Path | None:
    """The most recently written ``last.ckpt`` / ``last-vN.ckpt`` in ``folders`` (``None`` when there is none)."""
    found = [p for folder in folders if Path(folder).is_dir() for p in Path(folder).iterdir()
             if LAST_PATTERN.match(p.name) and p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime_ns) if found else None


def resolve_last(folders: Sequence[str | Path]) -> Path:
    """``--ckpt_path last``: the newest last checkpoint in ``folders``, or a clear error (never a silent retrain).

    Raises:
        NoLastCheckpointError: naming the folders searched.

    """
    last = find_last_checkpoint(folders)
    if last is None:
        where = ", ".join(str(f) for f in dict.fromkeys(str(f) for f in folders))
        raise NoLastCheckpointError(
            f"--ckpt_path last: no last checkpoint (last.ckpt) in {where}, where this command's runs save it. "
            "Start the run without --ckpt_path to train from scratch, or pass --ckpt_path <file>."
        )
    return last


def _log_locations(trainer: L.Trainer) -> list[str]:
    lines = []
    for logger in trainer.loggers:
        where = getattr(logger, "log_dir", None) or getattr(logger, "save_dir", None)
        try:
            run_dir = getattr(getattr(logger, "_experiment", None), "dir", None)  # a started W&B run's files
        except Exception:  # noqa: BLE001 - a logger's run object may refuse attribute access once finished
            run_dir = None
        if isinstance(run_dir, (str, Path)) and run_dir and Path(run_dir).parent.is_dir():
            where = f"{where} (run files: {Path(run_dir).parent})" if where else Path(run_dir).parent
        if where:
            lines.append(f"  logs ({type(logger).__name__}): {where}")
    return lines


def _checkpoint_locations(trainer: L.Trainer) -> list[str]:
    lines = []
    for callback in trainer.checkpoint_callbacks:
        if not isinstance(callback, ModelCheckpoint) or not callback.dirpath:
            continue
        files = [p for p in dict.fromkeys([callback.last_model_path, callback.best_model_path]) if p]
        files = [p for p in files if Path(p).is_file()]
        lines.append(f"  checkpoints: {callback.dirpath}" + (f" ({', '.join(Path(p).name for p in files)})"
                                                             if files else " (none written)"))
    return lines


def _prediction_locations(trainer: L.Trainer) -> list[str]:
    return [f"  predictions: {cb.output_dir}" for cb in trainer.callbacks
            if isinstance(cb, BasePredictionWriter) and getattr(cb, "output_dir", None)]


def describe_outputs(trainer: L.Trainer, subcommand: str, extra: dict[str, Any] | None = None) -> str:
    """A few lines that say where this run's logs, checkpoints and predictions went.

    Args:
        trainer: the trainer after the run.
        subcommand: ``fit``, ``validate``, ``test`` or ``predict``.
        extra: more ``name: path`` lines (e.g. the run directory).

    """
    lines = [f"wsol {subcommand}: outputs"]
    lines += [f"  {k}: {v}" for k, v in (extra or {}).items()]
    lines += _log_locations(trainer)
    if subcommand == "fit":
        lines += _checkpoint_locations(trainer)
    lines += _prediction_locations(trainer)
    if len(lines) == 1 + len(extra or {}):
        lines.append("  (no logger, checkpoint or prediction writer: nothing was written)")
    return "\n".join(lines)
