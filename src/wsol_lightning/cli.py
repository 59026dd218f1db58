"""The ``wsol`` command: a LightningCLI over every WSOL method and datamodule.

``wsol fit --config configs/bas_imagenet.yaml`` trains (then tests the final weights, as wsolevaluation does,
unless ``--test_after_fit false``); ``wsol test -c ... --ckpt_path ...``, ``wsol validate`` and ``wsol predict``
work as in any LightningCLI; ``wsol convert`` turns the authors' released checkpoint into one ``wsol test`` reads
(:mod:`wsol_lightning.convert`). ``--model BAS`` / ``--data CUBDataModule`` pick classes by name;
``data.num_classes`` is linked into the model.

Runs: every run has a stable run directory (:func:`wsol_lightning.runs.run_directory`: ``default_root_dir``
when given, else ``runs/<config stem>``); ``fit`` keeps ``<run dir>/checkpoints/last.ckpt`` up to date
(:class:`~wsol_lightning.callbacks.LastCheckpoint`, also on Ctrl+C), ``--ckpt_path last`` continues from it
(an error when there is none), and every run ends by printing where its outputs went.

Checkpoints: ``--ckpt_path FILE`` is read with ``weights_only=True``; the checkpoint's settings are reconciled
with the ones given in config files and on the command line by
:func:`wsol_lightning.checkpoints.reconcile_settings` (evaluation settings given win; a setting that defines
the model and differs, another method class, or another number of classes is refused, naming the keys).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from jsonargparse import Namespace
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.utilities import rank_zero_only

import wsol_lightning.callbacks  # noqa: F401  (registers MapVisualizer, COCOPredictionWriter by name)
import wsol_lightning.data  # noqa: F401  (registers every datamodule for --data by name)
import wsol_lightning.methods  # noqa: F401  (registers every method for --model by name)
from wsol_lightning.callbacks.config import LoggerSaveConfigCallback
from wsol_lightning.callbacks.last_checkpoint import LastCheckpoint
from wsol_lightning.checkpoints import (
    CheckpointError,
    check_method_class,
    check_num_classes,
    checkpoint_hparams,
    read_checkpoint,
    reconcile_settings,
    stored_prediction_settings,
    stored_values,
)
from wsol_lightning.cli_help import top_level_help, wants_top_level_help
from wsol_lightning.data import WSOLDataModule
from wsol_lightning.export import resolve_method_class
from wsol_lightning.methods import WSOLModule
from wsol_lightning.runs import CHECKPOINTS, NoLastCheckpointError, describe_outputs, resolve_last, run_directory

# Lightning's own special --ckpt_path values other than "last" (left to the Trainer).
_LIGHTNING_CKPT_KEYWORDS = ("best", "hpc", "registry")


@rank_zero_only
def _say(message: str) -> None:
    print(message, flush=True)


def _as_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, Namespace):
        return value.as_dict()
    return dict(value) if isinstance(value, dict) else {}


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
        self.run_dir: Path | None = None
        self.checkpoint_notes: list[str] = []
        self._args = args
        self._checkpoint: tuple[str, dict[str, Any]] | None = None
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

    def _prepare_subcommand_parser(self, klass: type, subcommand: str, **kwargs: Any) -> LightningArgumentParser:
        """Default ``--weights_only true``: the Trainer loads ``--ckpt_path`` as tensors and plain values only."""
        parser = super()._prepare_subcommand_parser(klass, subcommand, **kwargs)
        if any(getattr(action, "dest", None) == "weights_only" for action in parser._actions):
            parser.set_defaults(weights_only=True)
        return parser

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """``wsol predict --ckpt_path CK`` without ``--model``/``--data``: fill them in from the checkpoint."""
        from_command_line = args is None
        argv = sys.argv[1:] if args is None else args
        if isinstance(argv, (list, tuple)):
            args = self._args = predict_defaults([str(a) for a in argv])
        if from_command_line:  # the (completed) command line: not "args and sys.argv both given" as Lightning warns
            self.config = parser.parse_args(args)
            return
        super().parse_arguments(parser, args)

    # ------------------------------------------------------------------ run directory and --ckpt_path
    def _given_config(self, subcommand: str) -> Namespace:
        """Only what the user gave (config files and command line), without defaults."""
        args = self._args
        if isinstance(args, (dict, Namespace)):
            given = self.parser.parse_object(args, defaults=False)
        else:
            given = self.parser.parse_args(args, defaults=False)
        return given.get(subcommand) or Namespace()

    def _checkpoint_folders(self, config: Namespace) -> list[Path]:
        """Where this run's last checkpoints are: the run directory's and every configured ModelCheckpoint's."""
        assert self.run_dir is not None
        folders = [self.run_dir / CHECKPOINTS]
        for entry in config.trainer.get("callbacks") or []:
            init_args = _as_dict(entry.get("init_args")) if isinstance(entry, Namespace) else {}
            if str(entry.get("class_path", "")).endswith("ModelCheckpoint") and init_args.get("dirpath"):
                folders.append(Path(init_args["dirpath"]))
        defaults = self.trainer_defaults.get("callbacks") or []
        for callback in defaults if isinstance(defaults, list) else [defaults]:
            if isinstance(callback, ModelCheckpoint) and callback.dirpath:
                folders.append(Path(callback.dirpath))
        return folders

    def _parse_ckpt_path(self) -> None:
        """Set the run directory, resolve ``--ckpt_path last`` and reconcile the checkpoint's settings.

        Checkpoints written by a plain ``Trainer`` do not name their model class (``_class_path``, which only
        CLI runs store); for them the class given with ``--model`` is used.
        """
        subcommand = self.config.get("subcommand")
        if not subcommand:
            return
        config = self.config[subcommand]
        model = config.get("model")
        data = config.get("data")
        self.run_dir = run_directory(config.trainer.get("default_root_dir"), config.get("config") or [],
                                     model.get("class_path") if model else None,
                                     data.get("class_path") if data else None)
        config.trainer.default_root_dir = str(self.run_dir)
        ckpt_path = config.get("ckpt_path")
        if not ckpt_path or ckpt_path in _LIGHTNING_CKPT_KEYWORDS:
            return
        if ckpt_path == "last":
            ckpt_path = str(resolve_last(self._checkpoint_folders(config)))
            config.ckpt_path = ckpt_path
            _say(f"--ckpt_path last: continuing from {ckpt_path}")
        checkpoint = read_checkpoint(ckpt_path)
        hparams = checkpoint_hparams(checkpoint)
        self._checkpoint = (ckpt_path, hparams)
        given = self._given_config(subcommand).get("model") or Namespace()
        given_class = given.get("class_path")
        check_method_class(ckpt_path, hparams.get("_class_path"), given_class)
        if hparams.get("_class_path"):  # only an imported method class, never a module named by the file
            resolve_method_class(hparams["_class_path"], ckpt_path)
        class_path = hparams.get("_class_path") or given_class or (model.get("class_path") if model else None)
        if not hparams:
            return
        if class_path is None:
            raise CheckpointError(f"{ckpt_path} does not name its model class: pass --model <Class> (e.g. CAM)")
        settings, self.checkpoint_notes = reconcile_settings(
            ckpt_path, hparams, {**_as_dict(given.get("init_args")), **_as_dict(given.get("dict_kwargs"))},
            resuming=subcommand == "fit", stored=stored_values(checkpoint))
        parsed = {subcommand: {"model": {"class_path": class_path, "init_args": settings}}}
        self.config = self.parser.parse_object(parsed, self.config)
        for note in self.checkpoint_notes:
            _say(f"--ckpt_path {ckpt_path}: {note}")

    def after_instantiate_classes(self) -> None:
        """Refuse a checkpoint trained on another number of classes than the data has."""
        if self._checkpoint is not None and isinstance(self.model, WSOLModule):
            path, hparams = self._checkpoint
            check_num_classes(path, hparams.get("num_classes"), self.model.num_classes)

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list[Callback]) -> Any:
        """Add :class:`LastCheckpoint` (``<run dir>/checkpoints/last.ckpt``; it only saves during ``fit``)."""
        if (self.run_dir is not None and config.get("enable_checkpointing") is not False
                and not config.get("fast_dev_run")):
            callbacks = [*callbacks, LastCheckpoint(self.run_dir / CHECKPOINTS)]
        return super()._instantiate_trainer(config, callbacks)

    # ------------------------------------------------------------------ after each subcommand
    def _report(self, subcommand: str) -> None:
        extra = {"run directory": self.run_dir} if self.run_dir is not None else {}
        _say(describe_outputs(self.trainer, subcommand, extra))

    def before_predict(self) -> None:
        """Warn up front when no callback will write the predictions (they would only stay in memory)."""
        from lightning.pytorch.callbacks import BasePredictionWriter
        from lightning.pytorch.utilities import rank_zero_warn

        if not any(isinstance(cb, BasePredictionWriter) for cb in self.trainer.callbacks):
            rank_zero_warn("`wsol predict` has no prediction writer: nothing will be written to disk. Add "
                           "--trainer.callbacks+=wsol_lightning.callbacks.COCOPredictionWriter "
                           "--trainer.callbacks.output_dir DIR (README, 'Predict, export pseudo-labels')")

    def after_fit(self) -> None:
        """Test the final weights (wsolevaluation evaluates the last checkpoint); say where the outputs are."""
        config = self.config.get(self.subcommand, self.config)
        if config.get("test_after_fit", True) and not self.trainer.interrupted:
            self.trainer.test(self.model, datamodule=self.datamodule)
        self._report("fit")

    def after_validate(self) -> None:
        """Say where the outputs are."""
        self._report("validate")

    def after_test(self) -> None:
        """Say where the outputs are."""
        self._report("test")

    def after_predict(self) -> None:
        """Say where the outputs are."""
        self._report("predict")


def _given(argv: list[str], *names: str) -> str | None:
    """The value of the first of ``names`` in ``argv`` (``--k v`` or ``--k=v``), or ``None``."""
    for i, arg in enumerate(argv):
        key, eq, value = arg.partition("=")
        if key in names:
            return value if eq else (argv[i + 1] if i + 1 < len(argv) else None)
    return None


def _pretrained_as_checkpoint(argv: list[str], folder: str) -> list[str]:
    """``argv`` with ``--ckpt_path FOLDER`` replaced by a temporary checkpoint of it (removed at exit)."""
    import atexit
    import shutil
    import tempfile

    from wsol_lightning.methods.pretrained import checkpoint_from_pretrained

    directory = tempfile.mkdtemp(prefix="wsol_pretrained_")
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    path = str(checkpoint_from_pretrained(folder, directory))
    out, skip = [], False
    for i, arg in enumerate(argv):
        if skip:
            skip = False
        elif arg == "--ckpt_path":
            out += [arg, path]
            skip = i + 1 < len(argv)
        else:
            out.append(f"--ckpt_path={path}" if arg.startswith("--ckpt_path=") else arg)
    return out


def predict_defaults(argv: list[str]) -> list[str]:
    """Complete ``predict --ckpt_path CK`` from the checkpoint when no config, ``--model`` or ``--data`` is given.

    The model class comes from the checkpoint; the data defaults to
    :class:`~wsol_lightning.data.folder.ImageFolderDataModule` with the checkpoint's ``image_size``,
    ``mean``/``std`` and ``class_names`` (:func:`~wsol_lightning.checkpoints.stored_prediction_settings`).
    Values given on the command line win (they come after the inserted ones). ``--ckpt_path FOLDER`` (a
    ``save_pretrained`` / ``wsol export --format safetensors`` folder) is first replaced by a temporary checkpoint of
    it. Other argument lists are returned unchanged.
    """
    folder = _given(argv, "--ckpt_path") if argv and argv[0] == "predict" else None
    if folder and Path(folder).is_dir():  # a save_pretrained / `wsol export` folder: its checkpoint form
        argv = _pretrained_as_checkpoint(argv, folder)
    if not argv or argv[0] != "predict" or _given(argv, "-c", "--config") is not None:
        return argv
    ckpt_path = _given(argv, "--ckpt_path")
    if not ckpt_path or ckpt_path == "last" or ckpt_path in _LIGHTNING_CKPT_KEYWORDS:
        return argv
    checkpoint = read_checkpoint(ckpt_path)
    stored = stored_prediction_settings(checkpoint)
    added: list[str] = []
    class_path = checkpoint_hparams(checkpoint).get("_class_path") or stored.get("method")
    if _given(argv, "--model") is None and class_path:
        added += ["--model", str(class_path)]
    if _given(argv, "--data") is None:
        added += ["--data", "wsol_lightning.data.folder.ImageFolderDataModule"]
        for key in ("image_size", "class_names", "mean", "std"):
            if key in stored:
                added += [f"--data.{key}", json.dumps(stored[key])]
        num_classes = checkpoint_hparams(checkpoint).get("num_classes")
        if "class_names" not in stored and num_classes is not None:  # older checkpoints: class_k names
            added += ["--data.num_classes", str(int(num_classes))]
        _say(f"--ckpt_path {ckpt_path}: predicting with ImageFolderDataModule, "
             + ", ".join(f"{k}={stored[k]}" for k in ("image_size", "class_names") if k in stored)
             + " (from the checkpoint; give --data.<key> to change)")
    return [argv[0], *added, *argv[1:]]


def main(args: Any = None) -> None:
    """Entry point of the ``wsol`` console script.

    ``wsol`` / ``wsol --help``: :mod:`wsol_lightning.cli_help`; ``wsol convert ...``: :mod:`wsol_lightning.convert`;
    ``wsol eval ...``: :mod:`wsol_lightning.evaluate_maps`; the rest: :class:`WSOLCLI`.
    """
    argv = sys.argv[1:] if args is None else args
    if isinstance(argv, (list, tuple)) and wants_top_level_help(list(argv)):  # what wsol does, every subcommand
        print(top_level_help())
        if not argv:
            raise SystemExit(2)
        return
    if isinstance(argv, (list, tuple)) and argv and argv[0] == "convert":
        from wsol_lightning.convert import convert_main

        convert_main(argv[1:], WSOLCLI)
        return
    if isinstance(argv, (list, tuple)) and argv and argv[0] == "export":  # ONNX / TorchScript / Hub folder
        from wsol_lightning.export_cli import main as export_main

        export_main(list(argv[1:]))
        return
    if isinstance(argv, (list, tuple)) and argv and argv[0] == "eval":  # score maps you supply: wsol eval -h
        from wsol_lightning.evaluate_maps import main as evaluate_maps

        evaluate_maps(list(argv[1:]))
        return
    try:
        WSOLCLI(args=args)
    except (CheckpointError, NoLastCheckpointError) as err:  # a refused checkpoint: the message, no traceback
        sys.stderr.write(f"wsol: error: {err}\n")
        raise SystemExit(2) from None


if __name__ == "__main__":  # pragma: no cover
    main()
