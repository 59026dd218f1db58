"""``save_pretrained`` / ``from_pretrained`` / ``push_to_hub`` for every method: a Hugging Face Hub-style folder.

``model.save_pretrained(DIR)`` writes

* ``model.safetensors``: the method's whole state dict (network, operating threshold, ORNet's evaluator, ...);
* ``config.json``: ``{"format": "wsol_lightning", "format_version": 2, "method": <class path>, "init_args":
  {...}, "wsol": {class_names, image_size, mean, std, operating_threshold, map_interpolation, ...},
  "metrics": {...}}``;
* ``README.md``: a generated model card (:mod:`wsol_lightning.methods.model_card`).

``CAM.from_pretrained(DIR or "user/repo")`` rebuilds the method from ``init_args`` (initial weights switched off:
nothing is downloaded or read for them), loads the weights with ``strict=True`` from safetensors (never a pickle)
and restores ``model.wsol_settings``. A Hub repository id is fetched with :func:`huggingface_hub.snapshot_download`
(offline: only an already cached one). ``push_to_hub`` writes the same folder and uploads it with
:class:`huggingface_hub.HfApi`. The class a ``config.json`` names is only used when it is an already imported
subclass of the class ``from_pretrained`` is called on: a file never makes the library import code.
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

FORMAT = "wsol_lightning"
FORMAT_VERSION = 2
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
CARD = "README.md"
#: Constructor arguments that choose starting weights; the saved weights replace them, so they are switched off.
STARTING_WEIGHTS = ("pretrained", "evaluator_pretrained")


class PretrainedError(ValueError):
    """A pretrained folder or repository cannot be read (names the folder, file and key)."""


def plain(value: Any) -> Any:
    """``value`` as JSON types (tuples as lists, as ``json`` writes them; paths and other objects as strings)."""
    return json.loads(json.dumps(value, default=str))


def resolve_class(class_path: str, source: str | Path, base: type,
                  error: type[Exception] = PretrainedError) -> type:
    """The class ``class_path`` names, if its module is already imported and it subclasses ``base``.

    Raises:
        error: the module is not imported, or the class is not a ``base`` (naming ``source``).

    """
    module_name, _, name = str(class_path).rpartition(".")
    module = sys.modules.get(module_name)
    if module is None:
        raise error(f"{source}: names the class {class_path!r}, whose module is not imported; import "
                              "the module that defines it first (a file never makes the library import code)")
    cls = getattr(module, name, None)
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise error(f"{source}: {class_path!r} is not a wsol_lightning method (a WSOLModule subclass)")
    return cls


def init_args_of(module: Any) -> dict[str, Any]:
    """The constructor arguments of a method (its hyperparameters without Lightning's ``_`` bookkeeping)."""
    return plain({k: v for k, v in dict(module.hparams).items() if not str(k).startswith("_")})


def settings_of(module: Any, given: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What prediction needs besides the weights: the module's ``wsol_settings``, its threshold and map upsampling.

    The attached datamodule's class names, image size and mean/std are used when the module has none yet;
    ``given`` values win.
    """
    from wsol_lightning.checkpoints import prediction_settings  # plain-value helper shared with checkpoints

    trainer = getattr(module, "_trainer", None)
    settings = {k: v for k, v in prediction_settings(module, getattr(trainer, "datamodule", None)).items()
                if v is not None}
    settings.update({k: v for k, v in (getattr(module, "wsol_settings", None) or {}).items() if v is not None})
    threshold = getattr(module, "operating_threshold", None)
    if isinstance(threshold, torch.Tensor) and threshold.numel() == 1 and not math.isnan(float(threshold)):
        settings["operating_threshold"] = round(float(threshold), 6)  # the weights' own threshold
    settings["map_interpolation"] = getattr(module, "map_interpolation", "bicubic")
    settings["num_classes"] = int(module.hparams.get("num_classes", getattr(module, "num_classes", 0)))
    settings.update(given or {})
    return plain(settings)


def read_config(folder: Path) -> dict[str, Any]:
    """Read and check ``folder/config.json`` (the keys ``method`` and ``init_args`` are required).

    Raises:
        PretrainedError: the file is missing, not JSON (with the line), not a wsol_lightning config or lacks a key.

    """
    path = folder / CONFIG
    if not path.is_file():
        raise PretrainedError(f"{folder}: no {CONFIG} (a save_pretrained / `wsol export --format safetensors` "
                              f"folder holds {CONFIG}, {WEIGHTS} and {CARD})")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise PretrainedError(f"{path}, line {err.lineno}: not valid JSON ({err.msg})") from None
    if not isinstance(config, dict):
        raise PretrainedError(f"{path}: holds a {type(config).__name__}, not a JSON object")
    if config.get("format") != FORMAT or config.get("format_version") != FORMAT_VERSION:
        raise PretrainedError(f"{path}: key 'format'/'format_version' is {config.get('format')!r}/"
                              f"{config.get('format_version')!r}, expected {FORMAT!r}/{FORMAT_VERSION}")
    for key, kind in (("method", str), ("init_args", dict)):
        if not isinstance(config.get(key), kind):
            raise PretrainedError(f"{path}: key {key!r} is missing or not a {kind.__name__}")
    return config


def fetch_folder(name_or_path: str | Path, revision: str | None = None, cache_dir: str | Path | None = None,
                 local_files_only: bool = False, token: str | bool | None = None) -> Path:
    """A local folder as is; otherwise a Hub repository id, fetched (or found in the cache) with huggingface_hub.

    Raises:
        PretrainedError: a file instead of a folder, or a repository that cannot be fetched (e.g. offline).

    """
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise PretrainedError(f"{path} is a file; from_pretrained takes the folder save_pretrained wrote")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id=str(name_or_path), revision=revision, cache_dir=cache_dir,
                                      local_files_only=local_files_only, token=token,
                                      allow_patterns=[CONFIG, WEIGHTS, CARD]))
    except Exception as err:  # noqa: BLE001 - huggingface_hub raises many types (validation, offline, HTTP)
        raise PretrainedError(
            f"{name_or_path}: not a local folder, and fetching it as a Hugging Face Hub repository failed "
            f"({type(err).__name__}: {err}). Offline (HF_HUB_OFFLINE=1) only a folder or an already cached "
            "repository can be loaded.") from None


class PretrainedMixin:
    """``save_pretrained``, ``from_pretrained`` and ``push_to_hub`` for a :class:`WSOLModule` (see the module doc).

    ``wsol_settings`` holds what prediction needs besides the weights (class names, eval image size, mean/std,
    ...); ``from_pretrained`` restores it, ``save_pretrained`` writes it.
    """

    wsol_settings: dict[str, Any] | None = None

    def save_pretrained(self, save_directory: str | Path, *, settings: Mapping[str, Any] | None = None,
                        metrics: Mapping[str, Any] | None = None, license: str = "other",
                        push_to_hub: bool = False, repo_id: str | None = None, **push_kwargs: Any) -> Path:
        """Write ``model.safetensors``, ``config.json`` and ``README.md`` (atomically) to ``save_directory``.

        Args:
            save_directory: folder to write (created).
            settings: prediction settings to store (win over :func:`settings_of`'s).
            metrics: ``{name: value}`` for the model card and ``config.json`` (e.g. ``test/maxboxacc_v2``).
            license: the Hub license id of these weights for the card (``"other"`` unless you say).
            push_to_hub: also upload the folder to ``repo_id`` (:meth:`push_to_hub`).
            repo_id: Hub repository (default: the folder's name).
            **push_kwargs: forwarded to :meth:`push_to_hub`.

        Returns:
            The folder.

        """
        from safetensors.torch import save as safetensors_bytes

        from wsol_lightning.atomic import atomic_open
        from wsol_lightning.methods.model_card import build_card, citation_of

        out = Path(save_directory)
        out.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous().clone() for k, v in self.state_dict().items()}  # type: ignore[attr-defined]
        cls = type(self)
        config = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "method": f"{cls.__module__}.{cls.__qualname__}",
            "init_args": init_args_of(self), "wsol": settings_of(self, settings),
            "metrics": plain(dict(metrics)) if metrics else None, "weights": WEIGHTS,
        }
        card = build_card(cls.__name__, config["init_args"], config["wsol"], config["metrics"],
                          [CARD, CONFIG, WEIGHTS], citation_of(cls), license)
        payload = safetensors_bytes(state, metadata={"format": "pt", "wsol_lightning": str(FORMAT_VERSION)})
        with (atomic_open(out / WEIGHTS, "wb") as weights, atomic_open(out / CONFIG, "w", encoding="utf-8") as text,
              atomic_open(out / CARD, "w", encoding="utf-8") as readme):
            weights.write(payload)
            text.write(json.dumps(config, indent=2))
            readme.write(str(card))
        if push_to_hub:
            self.push_to_hub(repo_id or out.name, settings=settings, metrics=metrics, license=license,
                             **push_kwargs)
        return out

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, *, revision: str | None = None,
                        cache_dir: str | Path | None = None, local_files_only: bool = False,
                        token: str | bool | None = None, map_location: str | torch.device = "cpu") -> Any:
        """Rebuild a method from a ``save_pretrained`` folder or a Hub repository id (eval mode).

        ``WSOLModule.from_pretrained`` loads any method; ``CAM.from_pretrained`` refuses another method's folder.

        Args:
            name_or_path: a local folder, or a Hub repository id (``"user/repo"``).
            revision: Hub branch, tag or commit.
            cache_dir: Hub cache folder.
            local_files_only: never download (use the Hub cache only).
            token: Hub token (private repositories).
            map_location: device of the loaded weights.

        Raises:
            PretrainedError: a missing or bad file, key or weight (named), or another method's folder.

        """
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        folder = fetch_folder(name_or_path, revision, cache_dir, local_files_only, token)
        config = read_config(folder)
        method = resolve_class(config["method"], folder / CONFIG, PretrainedMixin)
        if not issubclass(method, cls):
            raise PretrainedError(f"{folder / CONFIG}: holds a {method.__name__}, not a {cls.__name__}; use "
                                  f"{method.__name__}.from_pretrained (or WSOLModule.from_pretrained)")
        weights = folder / str(config.get("weights") or WEIGHTS)
        if not weights.is_file():
            raise PretrainedError(f"{folder}: no weights file {weights.name} (named by {CONFIG} key 'weights')")
        try:
            state = load_file(str(weights), device="cpu")
        except (SafetensorError, OSError, ValueError) as err:
            raise PretrainedError(f"{weights}: not a readable safetensors file ({err})") from None
        args = dict(config["init_args"])
        if args.get("evaluator_pretrained") and not args.get("evaluator_from"):
            args["evaluator_from"] = str(weights)  # ORNet refine: the evaluator's weights are in this file
        args.update({k: False for k in STARTING_WEIGHTS if k in args})
        try:
            module = method(**args)
        except (TypeError, ValueError) as err:
            raise PretrainedError(f"{folder / CONFIG}: key 'init_args' does not build a {method.__name__}: "
                                  f"{err}") from None
        try:
            result = module.load_state_dict(state, strict=False)
        except RuntimeError as err:  # shapes differ
            raise PretrainedError(f"{weights} does not match the {method.__name__} that {CONFIG} describes: "
                                  f"{' '.join(str(err).split())[:600]}") from None
        if result.missing_keys or result.unexpected_keys:
            raise PretrainedError(
                f"{weights} does not match the {method.__name__} that {CONFIG} describes: missing keys "
                f"{result.missing_keys[:5]}, unexpected keys {result.unexpected_keys[:5]}")
        module.wsol_settings = dict(config.get("wsol") or {})
        module.pretrained_metrics = config.get("metrics")
        return module.to(map_location).eval()

    def push_to_hub(self, repo_id: str, *, settings: Mapping[str, Any] | None = None,
                    metrics: Mapping[str, Any] | None = None, license: str = "other", private: bool | None = None,
                    token: str | None = None, commit_message: str = "Upload wsol_lightning model",
                    branch: str | None = None, create_pr: bool | None = None) -> str:
        """Write the folder to a temporary place and upload it to the Hub repository ``repo_id`` (created if needed).

        Returns:
            The URL of the commit.

        """
        from huggingface_hub import HfApi

        api = HfApi(token=token)
        repo_id = api.create_repo(repo_id=repo_id, private=private, exist_ok=True).repo_id
        with tempfile.TemporaryDirectory() as tmp:
            folder = self.save_pretrained(Path(tmp) / "model", settings=settings, metrics=metrics, license=license)
            info = api.upload_folder(repo_id=repo_id, folder_path=folder, commit_message=commit_message,
                                     revision=branch, create_pr=create_pr)
        return str(getattr(info, "commit_url", info))


def checkpoint_from_pretrained(folder: str | Path, directory: str | Path) -> Path:
    """A Lightning checkpoint (``directory/pretrained.ckpt``) of a pretrained folder, for ``wsol predict``.

    It holds the method's state dict, its ``init_args`` (initial weights switched off) with the class path the CLI
    reads, and the folder's prediction settings as ``checkpoint["wsol"]``: plain values, ``weights_only``-readable.
    """
    import lightning

    method = PretrainedMixin.from_pretrained(folder)
    cls = type(method)
    hparams = {**init_args_of(method), "_class_path": f"{cls.__module__}.{cls.__qualname__}",
               "_instantiator": "lightning.pytorch.cli.instantiate_module"}
    path = Path(directory) / "pretrained.ckpt"
    torch.save({"state_dict": method.state_dict(), "hyper_parameters": hparams, "wsol": method.wsol_settings,
                "pytorch-lightning_version": lightning.__version__}, path)
    return path

