"""Mid-epoch checkpoints are opt-in, and the README's opt-in command is a valid ``wsol fit`` command line."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.readme import bash_commands, section
from wsol_lightning.callbacks import LastCheckpoint
from wsol_lightning.cli import main


def test_default_last_checkpoint_is_written_per_epoch_only(tmp_path: Path):
    last = LastCheckpoint(tmp_path)
    assert (last._every_n_train_steps, last._every_n_epochs, last._train_time_interval) == (0, 1, None)
    assert last.save_last and last.save_top_k == 0


def test_readme_mid_epoch_opt_in_parses_to_a_step_checkpoint(monkeypatch: pytest.MonkeyPatch, capsys):
    commands = [c for c in bash_commands(section("### Runs, checkpoints and resuming"))
                if any("every_n_train_steps" in word for word in c)]
    assert len(commands) == 1, commands
    command = commands[0]
    assert command[:2] == ["wsol", "fit"]
    monkeypatch.chdir(Path(__file__).resolve().parents[2])  # the README runs from the repository root
    with pytest.raises(SystemExit) as stop:
        main([*command[1:], "--print_config"])
    assert stop.value.code == 0
    callbacks = yaml.safe_load(capsys.readouterr().out)["trainer"]["callbacks"]
    steps = [c["init_args"] for c in callbacks if c["class_path"].endswith("ModelCheckpoint")]
    assert len(steps) == 1 and steps[0]["every_n_train_steps"] == 1000 and steps[0]["save_last"] is True
    assert steps[0]["dirpath"] == command[command.index("--trainer.callbacks.dirpath") + 1]
