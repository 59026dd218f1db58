"""WSOLWandbLogger: Lightning's WandbLogger (project ``wsol``) that goes offline by itself.

Without credentials (no ``WANDB_API_KEY`` and no ``~/.netrc`` entry for the W&B host) or without a
route to that host, the run is written offline and a message says how to upload it later with
``wandb sync``. ``WANDB_MODE=disabled`` (the test suite's default) and ``WANDB_MODE=offline`` are
honoured as W&B itself honours them.
"""

from __future__ import annotations

import json
import netrc
import os
import socket
from argparse import Namespace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only

DEFAULT_BASE_URL = "https://api.wandb.ai"


def wandb_host() -> str:
    """Host name of the W&B server (``WANDB_BASE_URL`` or api.wandb.ai)."""
    return urlparse(os.environ.get("WANDB_BASE_URL", DEFAULT_BASE_URL)).hostname or "api.wandb.ai"


def has_wandb_credentials() -> bool:
    """Whether ``WANDB_API_KEY`` is set or the netrc file (``$NETRC`` or ``~/.netrc``) has the host."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    path = Path(os.environ.get("NETRC", Path.home() / ".netrc")).expanduser()
    if not path.is_file():
        return False
    try:
        return netrc.netrc(str(path)).authenticators(wandb_host()) is not None
    except (netrc.NetrcParseError, OSError):
        return False


def can_reach_wandb(timeout: float = 2.0) -> bool:
    """Whether a TCP connection to the W&B host (port 443, or the URL's port) opens within ``timeout`` s."""
    url = urlparse(os.environ.get("WANDB_BASE_URL", DEFAULT_BASE_URL))
    port = url.port or (80 if url.scheme == "http" else 443)
    try:
        with socket.create_connection((wandb_host(), port), timeout=timeout):
            return True
    except OSError:
        return False


def resolve_offline(offline: bool | None) -> tuple[bool, str]:
    """Decide whether to run offline.

    Args:
        offline: the user's explicit choice (``None`` = decide automatically).

    Returns:
        ``(offline, reason)``; ``reason`` is empty when the run goes online or the user chose.

    """
    mode = os.environ.get("WANDB_MODE", "").lower()
    if offline is not None:
        return offline, ""
    if mode == "disabled":
        return False, ""  # W&B makes a no-op run; forcing offline would override the user's choice
    if mode in ("offline", "dryrun"):
        return True, "WANDB_MODE=offline"
    if not has_wandb_credentials():
        return True, f"no WANDB_API_KEY and no ~/.netrc entry for {wandb_host()}"
    if not can_reach_wandb():
        return True, f"{wandb_host()} is unreachable"
    return False, ""


class WSOLWandbLogger(WandbLogger):
    """WandbLogger with the ``wsol`` project by default and automatic offline mode.

    Args:
        project: W&B project.
        name: run name.
        save_dir: folder that receives ``wandb/`` (run files, offline runs).
        offline: ``None`` (default): offline when there are no credentials or no network;
            ``True``/``False`` force it.
        log_model: upload checkpoints (forced ``False`` offline).
        **kwargs: forwarded to :class:`~lightning.pytorch.loggers.WandbLogger` and ``wandb.init``.

    """

    def __init__(self, project: str = "wsol", name: str | None = None, save_dir: str = ".",
                 offline: bool | None = None, log_model: bool | str = False, **kwargs: Any) -> None:
        save_dir = os.environ.get("WANDB_DIR", save_dir) if save_dir == "." else save_dir
        offline, reason = resolve_offline(offline)
        # explicit modes, so they hold even when an earlier wandb session in this process cached another one
        if offline:
            log_model = False
            kwargs.setdefault("mode", "offline")
        elif os.environ.get("WANDB_MODE", "").lower() == "disabled":
            kwargs.setdefault("mode", "disabled")
        Path(save_dir).mkdir(parents=True, exist_ok=True)  # W&B warns "git root ... does not exist" otherwise
        super().__init__(project=project, name=name, save_dir=save_dir, offline=offline, log_model=log_model,
                         **kwargs)
        if self._wandb_init.get("anonymous") is None:  # Lightning passes None; W&B warns that it has no effect
            self._wandb_init.pop("anonymous", None)
        self.offline_reason = reason
        self._logged_hparams: dict[str, str] = {}
        if offline and reason:
            where = Path(save_dir) / "wandb" / "offline-run-*"
            rank_zero_info(f"W&B offline ({reason}): sync later with `wandb sync {where}`")

    @rank_zero_only
    def log_hyperparams(self, params: dict[str, Any] | Namespace) -> None:
        """Log hyperparameters once: keys already sent with the same value are skipped.

        Lightning logs the module's hyperparameters again at every ``fit``/``test``/``validate`` call (e.g. the
        test after ``fit``); the run config then changes only where a value really changed.
        """
        params = vars(params) if isinstance(params, Namespace) else dict(params)
        fresh = {}
        for key, value in params.items():
            encoded = json.dumps(value, default=str, sort_keys=True)
            if self._logged_hparams.get(key) != encoded:
                fresh[key] = value
                self._logged_hparams[key] = encoded
        if fresh:
            super().log_hyperparams(fresh)
