"""LastCheckpoint: ``last.ckpt`` in a fixed folder, also written when the user presses Ctrl+C.

``wsol fit`` adds one to every run (``<run directory>/checkpoints/last.ckpt``, see :mod:`wsol_lightning.runs`),
so ``wsol fit -c X --ckpt_path last`` finds the run again after a crash or a kill and continues it with the
same epoch and step counters, optimizer and scheduler state and data order.

* It saves when a :class:`~lightning.pytorch.callbacks.ModelCheckpoint` would (every epoch by default, or
  ``every_n_train_steps`` / ``train_time_interval``), keeping only ``last.ckpt`` (no top-k copies). Lightning
  writes each checkpoint to a temporary file that is then moved over the old one, so a kill during a save
  leaves the previous ``last.ckpt`` whole.
* The first SIGINT (Ctrl+C) during a training step lets that step finish, saves ``last.ckpt`` at the step
  boundary (a point from which a resumed run is the same as an uninterrupted one), then stops the run as
  Lightning stops on Ctrl+C (exit code 1). A second Ctrl+C, or one outside the training loop (validation),
  stops at once. Under DDP the ranks agree at each step so all of them save and stop together.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor


class LastCheckpoint(ModelCheckpoint):
    """Keep ``dirpath/last.ckpt`` up to date, and save it on the first Ctrl+C before stopping.

    Args:
        dirpath: folder of ``last.ckpt`` (a fixed path, not a logger's new ``version_N`` folder).
        **kwargs: forwarded to :class:`~lightning.pytorch.callbacks.ModelCheckpoint` (e.g.
            ``every_n_train_steps``); ``save_last=True`` and ``save_top_k=0`` are fixed.

    """

    def __init__(self, dirpath: str | Path, **kwargs: Any) -> None:
        super().__init__(dirpath=str(dirpath), save_last=True, save_top_k=0, **kwargs)
        self.interrupt_requested = False
        self._trainer: L.Trainer | None = None
        self._previous_handler: Any = None

    # ------------------------------------------------------------------ saving
    def _save_topk_checkpoint(self, trainer: L.Trainer, monitor_candidates: dict[str, Tensor]) -> None:
        # No top-k files: mark this step as checkpointed so ModelCheckpoint writes last.ckpt now (it only
        # writes the last checkpoint at steps where a top-k checkpoint was written).
        self._last_global_step_saved = trainer.global_step

    def save_now(self, trainer: L.Trainer) -> None:
        """Write ``last.ckpt`` for the current step (collective under DDP: call it on every rank)."""
        if self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    # ------------------------------------------------------------------ Ctrl+C
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Install the SIGINT handler (main thread only; other threads keep Python's default)."""
        self.interrupt_requested = False
        self._trainer = trainer
        if threading.current_thread() is threading.main_thread():
            self._previous_handler = signal.signal(signal.SIGINT, self._on_sigint)

    def _on_sigint(self, signum: int, frame: Any) -> None:
        trainer = self._trainer
        if self.interrupt_requested or trainer is None or not trainer.training:
            self._restore_handler()
            raise KeyboardInterrupt
        self.interrupt_requested = True
        rank_zero_info(f"\nCtrl+C: finishing this training step, then saving {self._last_path()} and stopping "
                       "(Ctrl+C again to stop at once).")

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        """Save and stop if Ctrl+C was pressed during this step (on any rank)."""
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        requested = self.interrupt_requested
        if trainer.world_size > 1:
            requested = trainer.strategy.reduce_boolean_decision(requested, all=False)
        if not requested:
            return
        self.save_now(trainer)
        self._restore_handler()
        rank_zero_info(f"Interrupted at global step {trainer.global_step} (epoch {trainer.current_epoch}): saved "
                       f"{self.last_model_path}. Continue the run with the same command and --ckpt_path last.")
        raise KeyboardInterrupt

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Write the final ``last.ckpt`` (if not written at this step yet) and restore the SIGINT handler."""
        if not trainer.fast_dev_run:
            self.save_now(trainer)
        self._restore_handler()

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Restore the SIGINT handler whatever ended the run."""
        self._restore_handler()

    def _restore_handler(self) -> None:
        if self._previous_handler is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, self._previous_handler)
        self._previous_handler = None

    def _last_path(self) -> str:
        return self.last_model_path or str(Path(self.dirpath or ".") / f"{self.CHECKPOINT_NAME_LAST}.ckpt")
