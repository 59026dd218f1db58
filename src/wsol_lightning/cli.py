"""The ``wsol`` command: a LightningCLI over every WSOL method and datamodule.

``wsol fit --config configs/bas_imagenet.yaml`` trains (then tests the final weights, as
wsolevaluation does, unless ``--test_after_fit false``); ``wsol test -c ... --ckpt_path ...``,
``wsol validate`` and ``wsol predict`` work as in any LightningCLI; ``wsol convert`` turns the authors' released
checkpoint into one ``wsol test`` reads (:mod:`wsol_lightning.convert`). ``--model BAS`` /
``--data CUBDataModule`` pick classes by name; ``data.num_classes`` is linked into the model.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

import wsol_lightning.callbacks  # noqa: F401  (registers MapVisualizer, COCOPredictionWriter by name)
import wsol_lightning.data  # noqa: F401  (registers every datamodule for --data by name)
import wsol_lightning.methods  # noqa: F401  (registers every method for --model by name)
from wsol_lightning.callbacks.config import LoggerSaveConfigCallback
from wsol_lightning.data import WSOLDataModule
from wsol_lightning.methods import WSOLModule


class WSOLCLI(LightningCLI):
    """LightningCLI in subclass mode for :class:`WSOLModule` and :class:`WSOLDataModule`.

    Args:
        args: command-line arguments (``None`` reads ``sys.argv``); tests pass a list.
        run: run the subcommand (``False`` only instantiates model, datamodule and trainer).
        **kwargs: forwarded to :class:`~lightning.pytorch.cli.LightningCLI`.

    """

    def __init__(self, args: Any = None, run: bool = True, **kwargs: Any) -> None:
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        kwargs.setdefault("save_config_callback", LoggerSaveConfigCallback)  # also logs the config (W&B)
        kwargs.setdefault("seed_everything_default", 0)
        kwargs.setdefault("parser_kwargs", {"default_env": False})
        super().__init__(
            model_class=WSOLModule,
            datamodule_class=WSOLDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            auto_configure_optimizers=False,
            args=args,
            run=run,
            **kwargs,
        )

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """Link ``data.num_classes`` into the model and add ``--test_after_fit``."""
        parser.link_arguments("data.num_classes", "model.init_args.num_classes", apply_on="instantiate")
        parser.add_argument(
            "--test_after_fit", type=bool, default=True,
            help="After `fit`, test the final weights on the test split (threshold chosen on val).",
        )

    def _parse_ckpt_path(self) -> None:
        """Read model hyperparameters from ``--ckpt_path``, also for checkpoints saved without the CLI.

        Lightning's CLI needs the checkpoint to name its model class (``_class_path``, which only CLI runs
        store); for a checkpoint written by a plain ``Trainer`` the class given with ``--model`` is used.
        """
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if ckpt_path and Path(ckpt_path).is_file():
            hparams = torch.load(ckpt_path, weights_only=True, map_location="cpu").get("hyper_parameters", {})
            hparams = {k: v for k, v in hparams.items() if k != "_instantiator"}
            model = self.config[subcommand].get("model")
            class_path = model.get("class_path") if model is not None else None
            if hparams and "_class_path" not in hparams:
                if class_path is None:
                    raise ValueError(f"{ckpt_path} does not name its model class: pass --model <Class> (e.g. CAM)")
                parsed = {subcommand: {"model": {"class_path": class_path, "dict_kwargs": hparams}}}
                self.config = self.parser.parse_object(parsed, self.config)
                return
        super()._parse_ckpt_path()

    def before_predict(self) -> None:
        """Warn up front when no callback will write the predictions (they would only stay in memory)."""
        from lightning.pytorch.callbacks import BasePredictionWriter
        from lightning.pytorch.utilities import rank_zero_warn

        if not any(isinstance(cb, BasePredictionWriter) for cb in self.trainer.callbacks):
            rank_zero_warn("`wsol predict` has no prediction writer: nothing will be written to disk. Add "
                           "--trainer.callbacks+=wsol_lightning.callbacks.COCOPredictionWriter "
                           "--trainer.callbacks.output_dir DIR (README, 'Predict, export pseudo-labels')")

    def after_fit(self) -> None:
        """Test the final weights after ``fit`` (wsolevaluation evaluates the last checkpoint)."""
        config = self.config.get(self.subcommand, self.config)
        if not config.get("test_after_fit", True):
            return
        if self.trainer.interrupted:
            return
        self.trainer.test(self.model, datamodule=self.datamodule)


def main(args: Any = None) -> None:
    """Entry point of the ``wsol`` console script (``wsol convert ...``: :mod:`wsol_lightning.convert`)."""
    argv = sys.argv[1:] if args is None else args
    if isinstance(argv, (list, tuple)) and argv and argv[0] == "convert":
        from wsol_lightning.convert import convert_main

        convert_main(argv[1:], WSOLCLI)
        return
    if isinstance(argv, (list, tuple)) and argv and argv[0] == "eval":  # score maps you supply: wsol eval -h
        from wsol_lightning.evaluate_maps import main as evaluate_maps

        evaluate_maps(list(argv[1:]))
        return
    WSOLCLI(args=args)


if __name__ == "__main__":  # pragma: no cover
    main()
