"""The README's "Your own photos" section runs as written on real photos (Oxford-IIIT Pets from ../shared).

The command is parsed from README.md (its ``bash`` block, continuations joined: tests/readme.py) and run
through the console-script path (``sys.argv`` + :func:`wsol_lightning.cli.main`) in a fresh working directory
that holds what the section presupposes: ``runs/cam_synthetic/checkpoints/last.ckpt`` from a (small) ``wsol fit
--config configs/cam_synthetic.yaml`` and a ``my_photos`` folder of a few Pets photos. Skipped when ../shared
(the Pets photos) is absent, as in a user's fresh clone.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import shared_dir
from tests.images import record_overlay_labels
from tests.readme import bash_commands, section
from wsol_lightning.callbacks import render
from wsol_lightning.cli import WSOLCLI, main

REPO = Path(__file__).resolve().parents[2]
PETS = ["Abyssinian_201.jpg", "Bengal_1.jpg", "american_bulldog_10.jpg"]  # three classes, three sizes


def pets_folder() -> Path:
    shared = shared_dir()
    folder = shared / "data" / "oxford_pets_3class" / "images" if shared else None
    if folder is None or not all((folder / name).is_file() for name in PETS):
        pytest.skip("the Oxford-IIIT Pets photos (../shared/data/oxford_pets_3class) are absent")
    return folder


def test_readme_your_own_photos_section_runs_as_written(tmp_path: Path, synthetic_cache: Path,
                                                         monkeypatch: pytest.MonkeyPatch, capsys):
    source = pets_folder()
    commands = bash_commands(section("### Your own photos"))
    assert len(commands) == 1 and commands[0][:2] == ["wsol", "predict"], commands
    command = commands[0]
    monkeypatch.chdir(tmp_path)
    # what the section presupposes: the checkpoint the quickstart's fit writes (here a small one) and the photos
    WSOLCLI(args=["fit", "--config", str(REPO / "configs" / "cam_synthetic.yaml"),
                  "--data.data_dir", str(synthetic_cache), "--data.images_per_class", "16",
                  "--data.val_per_class", "4", "--data.batch_size", "8", "--model.backbone", "test_resnet",
                  "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
                  "--trainer.enable_progress_bar", "false", "--test_after_fit", "false"])
    ckpt = Path(command[command.index("--ckpt_path") + 1])
    assert ckpt.is_file(), f"README checkpoint {ckpt}: not where `wsol fit -c configs/cam_synthetic.yaml` writes"
    folder = Path(command[command.index("--data.data_dir") + 1])
    folder.mkdir()
    for name in PETS:
        shutil.copy2(source / name, folder / name)
    fit_report = capsys.readouterr().out  # a default run says where its outputs went
    assert "wsol fit: outputs\n  run directory: runs/cam_synthetic\n" in fit_report
    assert f"checkpoints: {(tmp_path / 'runs' / 'cam_synthetic' / 'checkpoints').resolve()} (last.ckpt)" in fit_report

    labels = record_overlay_labels(monkeypatch)
    monkeypatch.setattr(sys, "argv", command)  # exactly what the shell hands the console script
    main()

    stored = torch.load(ckpt, map_location="cpu", weights_only=True)["wsol"]
    names = stored["class_names"]
    out = capsys.readouterr().out
    assert f"class_names={names}" in out and "wsol predict: outputs" in out and "predictions: preds" in out
    preds = Path("preds")
    assert not Path("config.yaml").exists()  # nothing stray in the working directory
    dataset = json.loads((preds / "predictions.json").read_text())
    assert [c["name"] for c in dataset["categories"]] == names  # the checkpoint's class names, not class_k
    images = sorted(dataset["images"], key=lambda im: im["file_name"])
    assert [im["file_name"] for im in images] == sorted(PETS)
    assert len(labels) == len(PETS) and {label.rsplit(" ", 1)[0] for label in labels} <= set(names)
    for im in images:
        original = Image.open(folder / im["file_name"])
        assert (im["width"], im["height"]) == original.size  # the original frame, not the network's
        overlay = np.asarray(Image.open(preds / "overlays" / f"{Path(im['file_name']).stem}.png"))
        assert overlay.shape == (original.height, original.width, 3)
        assert names[im["pred_class"]] in names and 0.0 < im["score"] <= 1.0
        anns = [a for a in dataset["annotations"] if a["image_id"] == im["id"]]
        assert anns, f"{im['file_name']}: no box at the operating threshold"
        x, y, w, h = (int(v) for v in anns[0]["bbox"])  # the largest box, drawn in red on the overlay
        assert 0 <= x and 0 <= y and x + w <= im["width"] and y + h <= im["height"]
        assert overlay[y + h - 1, x + w - 1].tolist() == list(render.PRED_COLOUR)
    assert sorted(p.name for p in (preds / "overlays").iterdir()) == sorted(f"{Path(n).stem}.png" for n in PETS)
