"""Issue 14 case 7 for ``faults.py``: ``wsol predict`` on a folder with bad, unusual and huge images, and a crash."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
from fault_cases import TRAINER, Context, cli
from faults import Case, Run, Verdict
from PIL import Image

WRITER = "wsol_lightning.callbacks.COCOPredictionWriter"


def images(folder: Path, count: int = 4, size: tuple[int, int] = (48, 40)) -> Path:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(count):
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(folder / f"img_{k}.jpg")
    return folder


def predict(work: Path, ctx: Context, folder: Path, *extra: str) -> Any:
    return cli(["predict", "--model", "CAM", "--ckpt_path", str(ctx.ckpt), "--data",
                "wsol_lightning.data.folder.ImageFolderDataModule", "--data.data_dir", str(folder),
                "--data.num_classes", "4", "--data.image_size", "32", "--data.batch_size", "2",
                "--data.num_workers", "0", *TRAINER, "--trainer.logger", "false", f"--trainer.callbacks+={WRITER}",
                "--trainer.callbacks.output_dir", str(work / "out"), "--return_predictions", "false", *extra])


def predictions(run: Run) -> dict[str, Any] | None:
    path = run.work / "out" / "predictions.json"
    return json.loads(path.read_text()) if path.is_file() else None


# --------------------------------------------------------------------------------------- bad files
def with_bad_file(*extra: str) -> Any:
    def action(work: Path, ctx: Context) -> Any:
        folder = images(work / "imgs")
        (folder / "zz_bad.jpg").write_bytes((folder / "img_0.jpg").read_bytes()[:200])  # truncated, last
        return predict(work, ctx, folder, *extra)

    return action


def bad_listed(run: Run) -> Verdict:
    data = predictions(run)
    if data is None:
        return "lost", "exit 0 but no predictions.json"
    names = [im["file_name"] for im in data.get("images", [])]
    skipped = {s.get("file_name"): s.get("reason", "") for s in data.get("skipped", [])}
    if "zz_bad.jpg" in skipped:
        return "skipped+counted", f"{len(names)} images written; skipped zz_bad.jpg: {skipped['zz_bad.jpg']}"
    if "zz_bad.jpg" in names:
        return "silently wrong", "the unreadable file is listed as a predicted image"
    return "silently wrong", "zz_bad.jpg dropped without being listed"


def kept_before_error(run: Run) -> Verdict | None:
    data = predictions(run)
    done = len(data.get("images", [])) if data else 0
    if done == 0:
        return "lost", f"nothing written (predictions.json missing or empty) after: {run.message}"
    return None


def fail_fast_ignored(run: Run) -> Verdict:
    return "silently wrong", "skip_bad=false but the bad file did not stop the run"


# --------------------------------------------------------------------------------------- image modes
def odd_modes(work: Path, ctx: Context) -> Any:
    folder = work / "imgs"
    folder.mkdir()
    ramp = np.linspace(0, 65535, 48 * 40).round().astype(np.uint16).reshape(40, 48)
    Image.fromarray(ramp).save(folder / "g16.png")
    pal = Image.new("P", (48, 40))
    pal.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    pal.save(folder / "pal.png")
    la = np.zeros((40, 48, 2), np.uint8)
    la[..., 0] = 100  # fully transparent: a viewer shows the background
    Image.fromarray(la, "LA").save(folder / "la.png")
    Image.new("CMYK", (48, 40), (0, 255, 255, 0)).save(folder / "cmyk.tif")
    return predict(work, ctx, folder)


def modes_read_right(run: Run) -> Verdict:
    from wsol_lightning.data.dataset import read_image

    folder = run.work / "imgs"
    wrong = []
    saturated = float((read_image(folder / "g16.png") == 255).mean())
    if saturated > 0.05:
        wrong.append(f"16-bit PNG {saturated:.0%} pixels at 255")
    if read_image(folder / "pal.png")[0, 0].tolist() != [10, 20, 30]:
        wrong.append("palette colours")
    if read_image(folder / "la.png")[0, 0].tolist() != [255, 255, 255]:
        wrong.append("LA transparency")
    if read_image(folder / "cmyk.tif")[0, 0].tolist() != [255, 0, 0]:
        wrong.append("CMYK colour")
    data = predictions(run)
    if data is None or len(data["images"]) != 4:
        wrong.append("not every image predicted")
    if wrong:
        return "silently wrong", "; ".join(wrong)
    return "ok", f"16-bit scaled ({saturated:.1%} at 255), palette, LA, CMYK read as shown; 4 images predicted"


# --------------------------------------------------------------------------------------- where, huge, crash
def relative_output(work: Path, ctx: Context) -> Any:
    """``--trainer.callbacks.output_dir out`` given relative, as users type it (``execute`` runs in ``work``)."""
    return predict(work, ctx, images(work / "imgs"), "--trainer.callbacks.output_dir", "out")  # cwd = work


def says_where(run: Run) -> Verdict:
    """The absolute output folder must be printed (a relative one says nothing once the shell moved on)."""
    where = str((run.work / "out").resolve())
    if run.said(re.escape(where)):
        text = next(ln for ln in run.logs.splitlines() if where in ln)
        return "ok", text.split(": ", 1)[-1]
    return "lost", "nothing says where the output went"


def no_writer(work: Path, ctx: Context) -> Any:
    """``wsol predict`` as a user first types it: no writer callback."""
    return cli(["predict", "--model", "CAM", "--ckpt_path", str(ctx.ckpt), "--data",
                "wsol_lightning.data.folder.ImageFolderDataModule", "--data.data_dir", str(images(work / "imgs")),
                "--data.num_classes", "4", "--data.image_size", "32", "--data.num_workers", "0", *TRAINER,
                "--trainer.logger", "false"])


def told_nothing_written(run: Run) -> Verdict:
    said = [ln for ln in run.logs.splitlines() if "COCOPredictionWriter" in ln]
    if said:
        return "ok", said[0]
    return "lost", "predictions only returned in memory; nothing written, nothing said"


def huge(work: Path, ctx: Context) -> Any:
    folder = images(work / "imgs", count=1, size=(6000, 4000))
    return predict(work, ctx, folder, "--trainer.callbacks.save_maps", "true")


def map_size(run: Run) -> Verdict:
    maps = sorted((run.work / "out" / "maps").glob("*.npy"))
    if not maps:
        return "lost", "no map written"
    size = maps[0].stat().st_size
    shape = np.load(maps[0], mmap_mode="r").shape
    verdict = "ok" if size < 10e6 else "silently wrong"
    return verdict, f"6000x4000 input -> stored map {shape[1]}x{shape[0]}, {size / 1e6:.1f} MB"


def crash_mid_run(work: Path, ctx: Context) -> Any:
    """Plain Trainer.predict with a callback that raises after batch 1 (2 batches of 2 images done)."""
    import lightning as L
    from lightning.pytorch.callbacks import Callback

    from wsol_lightning.callbacks import COCOPredictionWriter
    from wsol_lightning.data.folder import ImageFolderDataModule
    from wsol_lightning.methods import CAM

    class Crash(Callback):
        def on_predict_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int,
                                 dataloader_idx: int = 0) -> None:
            if batch_idx == 1:
                raise RuntimeError("injected crash after batch 1")

    model = CAM.load_from_checkpoint(ctx.ckpt, map_location="cpu")
    data = ImageFolderDataModule(images(work / "imgs", count=6), image_size=32, batch_size=2, num_workers=0,
                                 num_classes=4)
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[COCOPredictionWriter(output_dir=str(work / "out")), Crash()])
    return trainer.predict(model, datamodule=data, return_predictions=False)


def kept_after_crash(run: Run) -> Verdict:
    data = predictions(run)
    records = sorted((run.work / "out").glob("*.jsonl"))
    if data and len(data.get("images", [])) >= 4:
        info = data.get("info", {})
        return "ok", (f"injected crash: {len(data['images'])} finished images kept in predictions.json "
                      f"(complete={info.get('complete')}), records in {[p.name for p in records]}")
    return "lost", f"injected crash: {len(data['images']) if data else 0} of 4 finished images kept"


def predict_cases() -> list[Case]:
    """Case 7 rows."""
    return [
        Case(7, "predict: a corrupt file in the folder", "predict", with_bad_file(), [r"zz_bad\.jpg"], bad_listed,
             kept_before_error),
        Case(7, "predict: fail fast (skip_bad false)", "predict", with_bad_file("--data.skip_bad", "false"),
             [r"zz_bad\.jpg"], fail_fast_ignored, kept_before_error),
        Case(7, "predict: 16-bit, palette, LA, CMYK images", "predict", odd_modes, [], modes_read_right),
        Case(7, "predict: says where it wrote", "predict", relative_output, [], says_where),
        Case(7, "predict: no writer given", "predict", no_writer, [], told_nothing_written),
        Case(7, "predict: 6000x4000 input, saved map", "predict", huge, [], map_size),
        Case(7, "predict: crash mid-run", "predict", crash_mid_run, [], None,
             kept_after_crash),
    ]
