"""WSOLWandbLogger's offline decision: env modes, credentials, reachability; the sync hint."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import wandb

from wsol_lightning import loggers
from wsol_lightning.loggers import WSOLWandbLogger, has_wandb_credentials, resolve_offline


@pytest.fixture
def no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_BASE_URL", raising=False)
    netrc = tmp_path / "netrc"
    netrc.write_text("machine example.org login me password secret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    monkeypatch.setattr(loggers, "can_reach_wandb", lambda timeout=2.0: pytest.fail("must not probe"))
    return netrc


def test_no_credentials_goes_offline_without_touching_the_network(no_credentials: Path):
    assert not has_wandb_credentials()
    offline, reason = resolve_offline(None)
    assert offline and "WANDB_API_KEY" in reason


def test_explicit_choice_and_env_modes_win(no_credentials: Path, monkeypatch: pytest.MonkeyPatch):
    assert resolve_offline(False) == (False, "")
    assert resolve_offline(True) == (True, "")
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert resolve_offline(None) == (False, "")  # W&B's own disabled mode, not forced offline
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert resolve_offline(None)[0]


def test_credentials_then_reachability_decide(no_credentials: Path, monkeypatch: pytest.MonkeyPatch):
    no_credentials.write_text("machine api.wandb.ai login user password abc\n")
    assert has_wandb_credentials()
    monkeypatch.setattr(loggers, "can_reach_wandb", lambda timeout=2.0: False)
    offline, reason = resolve_offline(None)
    assert offline and "unreachable" in reason
    monkeypatch.setattr(loggers, "can_reach_wandb", lambda timeout=2.0: True)
    assert resolve_offline(None) == (False, "")
    monkeypatch.setenv("WANDB_BASE_URL", "https://wandb.mycompany.com")
    assert not has_wandb_credentials()  # the key is for another host
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    assert has_wandb_credentials()


def test_logger_defaults_and_sync_hint(no_credentials: Path, tmp_path: Path,
                                       caplog: pytest.LogCaptureFixture):
    with caplog.at_level(logging.INFO):
        logger = WSOLWandbLogger(save_dir=str(tmp_path))
    assert logger._offline and logger._project == "wsol" and logger._log_model is False
    assert "wandb sync" in caplog.text and str(tmp_path) in caplog.text


def test_disabled_mode_makes_a_working_no_op_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    logger = WSOLWandbLogger(save_dir=str(tmp_path))
    assert not logger._offline
    logger.log_metrics({"val/x": 1.0}, step=0)
    logger.experiment.finish()
    wandb.teardown()  # do not leave a session with cached settings to later tests
    assert not (tmp_path / "wandb").exists() or not any((tmp_path / "wandb").glob("offline-run-*"))
