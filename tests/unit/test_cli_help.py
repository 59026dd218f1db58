"""``wsol --help`` says what the tool does and lists every subcommand; ``wsol <sub> --help`` still works."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pytest

from wsol_lightning.cli import WSOLCLI, main
from wsol_lightning.cli_help import SUBCOMMANDS, wants_top_level_help

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "cam_synthetic.yaml"


def test_top_level_help_lists_every_subcommand_with_its_line_and_points_to_the_readme(capsys):
    main(["--help"])
    text = capsys.readouterr().out
    assert "Weakly supervised object localization" in text and "README.md" in text
    assert "Lightning Trainer command line tool" not in text
    listed = [line.split()[0] for line in text.split("subcommands:\n")[1].split("\n\n")[0].splitlines()]
    assert listed == ["fit", "validate", "test", "predict", "eval", "export", "convert"]
    for name, summary in SUBCOMMANDS.items():
        assert f"  {name}" in text and summary in text
    assert set(WSOLCLI.subcommands()) <= set(SUBCOMMANDS)  # every LightningCLI subcommand is described
    main(["-h"])
    assert capsys.readouterr().out == text


def test_bare_wsol_prints_the_help_and_fails(capsys):
    with pytest.raises(SystemExit) as stop:
        main([])
    assert stop.value.code == 2 and "subcommands:" in capsys.readouterr().out


def test_only_a_lone_help_flag_is_the_top_level_help():
    assert wants_top_level_help([]) and wants_top_level_help(["-h"]) and wants_top_level_help(["--help"])
    assert not wants_top_level_help(["fit", "--help"]) and not wants_top_level_help(["eval", "-h"])


def test_subcommand_help_is_the_subcommands_own(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["predict", "--help"])
    text = capsys.readouterr().out
    assert stop.value.code == 0 and "predict" in text.splitlines()[0] and "--ckpt_path" in text
    with pytest.raises(SystemExit) as stop:
        main(["eval", "--help"])
    assert stop.value.code == 0 and "usage: wsol eval" in capsys.readouterr().out


def test_the_command_line_parses_without_lightnings_args_and_argv_warning(monkeypatch, capsys):
    """``wsol fit ...`` from the shell (args=None): no 'provide both args and command line arguments' warning."""
    monkeypatch.setattr(sys, "argv", ["wsol", "fit", "--config", str(CONFIG), "--print_config"])
    with warnings.catch_warnings(record=True) as caught, pytest.raises(SystemExit) as stop:
        warnings.simplefilter("always")
        main()
    assert stop.value.code == 0 and "model:" in capsys.readouterr().out
    assert not [w for w in caught if "args parameter" in str(w.message)], [str(w.message) for w in caught]
