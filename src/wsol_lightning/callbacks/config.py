"""Send the full resolved CLI config to the loggers (W&B run config, TensorBoard/CSV hparams)."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.cli import SaveConfigCallback

from wsol_lightning.methods.pretrained import plain


class LoggerSaveConfigCallback(SaveConfigCallback):
    """Save ``config.yaml`` to the log dir (as Lightning does) and log the config to every logger.

    The config is logged under the key ``config`` (the nested dict of the resolved YAML: trainer,
    model, data, seed), so a W&B run shows exactly the command that produced it.
    """

    def save_config(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Log the resolved config (called on rank zero only)."""
        if not trainer.loggers:
            return
        config = self.config.as_dict() if hasattr(self.config, "as_dict") else dict(self.config)
        config.pop("config", None)  # the list of --config paths: not a setting
        model = config.get("model")
        if isinstance(model, dict) and "num_classes" in pl_module.hparams:  # linked from data at instantiation
            model.setdefault("init_args", {})["num_classes"] = int(pl_module.hparams.num_classes)
        payload = {"config": plain(config)}
        for logger in trainer.loggers:
            logger.log_hyperparams(payload)
