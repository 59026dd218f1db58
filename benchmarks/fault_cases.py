"""The fault matrix of ``faults.py``: issue 14's cases 1-10, each provoked on a tiny layout and judged.

Shared, built once per matrix (:class:`Context`): a synthetic dataset cache, a 4-class CAM (``test_resnet``, 32 px)
checkpoint written by ``wsol fit``, and a fake CUB_200_2011 (official layout, 2 classes x 6 images) that each
CUB case copies and breaks. Per-case checks are in the ``verify``/``after_error`` functions next to each case.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from faults import Case, Run, Verdict, warned_about

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "cam_synthetic.yaml"
TRAINER = ["--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.enable_progress_bar", "false",
           "--trainer.enable_model_summary", "false"]
CAM = ["--model", "CAM", "--model.backbone", "test_resnet", "--model.pretrained", "false",
       "--model.cam_curve_interval", "0.01"]


def cli(args: list[str]) -> Any:
    from wsol_lightning.cli import WSOLCLI

    return WSOLCLI(args=args)


class Context:
    """Inputs shared by the cases (built lazily, once)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.cache = root / "synthetic_cache"
        self._ckpt: Path | None = None
        self._cub: Path | None = None

    def synthetic(self, classes: int = 4, size: int = 32) -> list[str]:
        return ["--data", "SyntheticDataModule", "--data.data_dir", str(self.cache), "--data.num_classes",
                str(classes), "--data.images_per_class", "8", "--data.val_per_class", "2", "--data.image_size",
                str(size), "--data.batch_size", "4", "--data.num_workers", "0"]

    @property
    def ckpt(self) -> Path:
        """A 4-class CAM checkpoint (threshold chosen on val) written by ``wsol fit``."""
        if self._ckpt is None:
            run = self.root / "shared_fit"
            cli(["fit", *CAM, *self.synthetic(), *TRAINER, "--trainer.max_epochs", "1",
                 "--trainer.limit_train_batches", "2", "--trainer.logger", "false",
                 "--trainer.default_root_dir", str(run), "--test_after_fit", "false"])
            self._ckpt = sorted(run.rglob("*.ckpt"))[-1]
        return self._ckpt

    def cub(self, work: Path) -> Path:
        """A fresh copy of the fake CUB_200_2011 in ``work``."""
        if self._cub is None:
            from wsol_lightning.data.fakes import write_cub_layout

            self._cub = write_cub_layout(self.root / "cub_template", num_classes=2, images_per_class=6,
                                         with_segmentations=False)
        return Path(shutil.copytree(self._cub, work / "CUB_200_2011"))


# ------------------------------------------------------------------------------------ 1: code execution
class Payload:
    """Unpickling calls ``os.mkdir(marker)``: proof that loading executed code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.mkdir, (str(self.marker),)


def payload_file(work: Path, ctx: Context, name: str, weights: bool = False) -> Path:
    if weights:
        data: dict[str, Any] = {"payload": Payload(work / "EXECUTED")}
    else:
        data = torch.load(ctx.ckpt, map_location="cpu", weights_only=True)
        data["payload"] = Payload(work / "EXECUTED")
    torch.save(data, work / name)
    return work / name


def not_executed(run: Run) -> Verdict | None:
    if (run.work / "EXECUTED").exists():
        return "silently wrong", "pickle payload EXECUTED while loading"
    return None


def executed_ok(run: Run) -> Verdict:
    return not_executed(run) or ("ok", "loaded without running the payload")


def export_payload(work: Path, ctx: Context) -> Any:
    from wsol_lightning.export import main

    return main([str(payload_file(work, ctx, "evil.ckpt")), str(work / "exported")])


def test_payload(work: Path, ctx: Context) -> Any:
    return cli(["test", *CAM, *ctx.synthetic(), *TRAINER, "--trainer.logger", "false",
                "--ckpt_path", str(payload_file(work, ctx, "evil.ckpt"))])


def pretrained_payload(work: Path, ctx: Context) -> Any:
    path = payload_file(work, ctx, "evil.pth", weights=True)
    return cli(["fit", *CAM, "--model.pretrained", str(path), *ctx.synthetic(), *TRAINER,
                "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "1", "--trainer.logger", "false",
                "--trainer.default_root_dir", str(work / "run"), "--test_after_fit", "false"])


# ------------------------------------------------------------------------------------ 2: settings dropped
def test_with(ctx: Context, *extra: str, model: list[str] = CAM) -> Any:
    return cli(["test", *model, *ctx.synthetic(), *TRAINER, "--trainer.logger", "false",
                "--ckpt_path", str(ctx.ckpt), *extra])


def threshold_used(run: Run) -> Verdict:
    used = float(run.value.model.operating_threshold)
    if abs(used - 0.9) < 1e-6:
        return "ok", "tested at the 0.9 asked"
    return "silently wrong", f"tested at the checkpoint's {used:.2f}, not the 0.9 asked, nothing said"


def backbone_used(run: Run) -> Verdict:
    used = run.value.model.hparams.backbone
    if used == "resnet18":
        return "ok", "ran resnet18 as asked"
    return "silently wrong", f"ran the checkpoint's {used}, not the resnet18 asked, nothing said"


def method_used(run: Run) -> Verdict:
    used = type(run.value.model).__name__
    return ("ok", "ran BAS") if used == "BAS" else ("silently wrong", f"ran {used} under a BAS command")


# ------------------------------------------------------------------------------------ 3: resume
def synthetic_fit(work: Path, ctx: Context, *extra: str) -> Any:
    return cli(["fit", "--config", str(CONFIG), "--model.backbone", "test_resnet", "--data.data_dir",
                str(ctx.cache), "--data.images_per_class", "8", "--data.val_per_class", "2", "--data.image_size",
                "32", "--data.batch_size", "2", "--trainer.default_root_dir", str(work / "run"),
                "--trainer.enable_progress_bar", "false",
                "--test_after_fit", "false", "--trainer.limit_train_batches", "2", "--trainer.max_epochs", "1",
                *extra])


def has_last(run: Run) -> Verdict:
    found = sorted((run.work / "run").rglob("last.ckpt"))
    if found:
        return "ok", f"wrote {found[0].relative_to(run.work)}"
    return "lost", "no last.ckpt written by the default config: a killed run cannot resume"


def resume_last(work: Path, ctx: Context) -> Any:
    synthetic_fit(work, ctx)
    return synthetic_fit(work, ctx, "--trainer.max_epochs", "2", "--trainer.limit_train_batches", "3",
                         "--ckpt_path", "last")


def resumed(run: Run) -> Verdict:
    steps = int(run.value.trainer.global_step)  # resumed: 2 + 3 = 5; from scratch: 2 x 3 = 6
    if steps == 5:
        return "ok", "continued the run (epoch 2 only)"
    return "lost", f"global step {steps} after `--ckpt_path last` (resuming reaches 5, from scratch 6), exit 0"


# ------------------------------------------------------------------------------------ 9: downloads
def serve(payload: bytes, fraction: float) -> tuple[Any, str]:
    """A loopback server announcing ``len(payload)`` bytes, sending ``fraction`` of them, then closing."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload[: int(len(payload) * fraction)])
            self.close_connection = True

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}/a.tgz"


def download_case(truncated_file: bool) -> Any:
    """Early close: a third of the archive then EOF. Truncated file: two thirds served with a matching length."""

    def action(work: Path, ctx: Context) -> Any:
        import tarfile

        from wsol_lightning.data.download import Resource, download_and_extract

        with tarfile.open(work / "a.tgz", "w:gz") as tf:
            tf.add(ctx.cub(work), arcname="CUB_200_2011")
        data = (work / "a.tgz").read_bytes()
        httpd, url = serve(data[: len(data) * 2 // 3], 1.0) if truncated_file else serve(data, 1 / 3)
        try:
            download_and_extract([Resource(url)], work / "out", marker="CUB_200_2011/images.txt")
        finally:
            httpd.shutdown()
            httpd.server_close()
        return url

    return action


def archive_not_kept(run: Run) -> Verdict | None:
    if (run.work / "out" / ".downloads" / "a.tgz").exists():
        return "silently wrong", f"truncated archive kept as final (reused by every later run): {run.message}"
    return None


def download_verify(run: Run) -> Verdict:
    return "silently wrong", "a truncated archive was saved and accepted, exit 0"


# ------------------------------------------------------------------------------------ 10: messages
def image_size_case(size: int) -> Any:
    def action(work: Path, ctx: Context) -> Any:
        return cli(["fit", *CAM, *ctx.synthetic(size=size), *TRAINER, "--trainer.max_epochs", "1",
                    "--trainer.limit_train_batches", "1", "--trainer.logger", "false",
                    "--trainer.default_root_dir", str(work / "run"), "--test_after_fit", "false"])

    return action


def ddp_fit(work: Path, ctx: Context) -> str:
    """A 2-process gloo DDP fit + test in a subprocess (DDP re-launches the script); returns its output."""
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src"), "PYTHONUNBUFFERED": "1"}
    env.pop("LOCAL_RANK", None)
    env.pop("WORLD_SIZE", None)
    args = [sys.executable, "-m", "wsol_lightning.cli", "fit", *CAM, *ctx.synthetic(), *TRAINER,
            "--trainer.devices", "2", "--trainer.strategy", "ddp", "--trainer.max_epochs", "1",
            "--trainer.limit_train_batches", "2", "--trainer.logger", "false",
            "--trainer.default_root_dir", str(work / "run")]
    proc = subprocess.run(args, env=env, cwd=work, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"DDP run exited {proc.returncode}: {proc.stderr[-1500:]}")
    return proc.stdout + proc.stderr


def sync_dist_warnings(run: Run) -> Verdict:
    count = len(re.findall(r"sync_dist", run.value))
    if count == 0:
        return "ok", "2-process fit + test, no sync_dist warning"
    return "noisy", f"{count} sync_dist warnings in a 2-process fit + test"


def all_cases() -> list[Case]:
    """Every case of issue 14, in order."""
    from fault_data import data_cases
    from fault_predict import predict_cases

    cases = [
        Case(1, "export: pickle payload in the checkpoint", "export", export_payload, [r"evil\.ckpt"],
             executed_ok, not_executed),
        Case(1, "--ckpt_path: pickle payload", "test", test_payload, [r"evil\.ckpt"], executed_ok, not_executed),
        Case(1, "pretrained: pickle payload", "fit", pretrained_payload, [r"evil\.pth"], executed_ok,
             not_executed),
        Case(2, "--ckpt_path + operating_threshold 0.9", "test",
             lambda w, c: test_with(c, "--model.init_args.operating_threshold", "0.9"), ["operating_threshold"],
             threshold_used),
        Case(2, "--ckpt_path + backbone resnet18", "test",
             lambda w, c: test_with(c, "--model.init_args.backbone", "resnet18"), ["backbone", "resnet18"],
             backbone_used),
        Case(2, "BAS command, CAM checkpoint", "test",
             lambda w, c: test_with(c, model=["--model", "BAS", "--model.backbone", "test_resnet"]), ["CAM", "BAS"],
             method_used),
        Case(3, "default config writes last.ckpt", "fit", lambda w, c: synthetic_fit(w, c), ["last"], has_last),
        Case(3, "--ckpt_path last continues the run", "fit", resume_last, ["last"], resumed),
        *data_cases(),
        *predict_cases(),
        Case(9, "server closes early, no checksum", "download", download_case(False), [r"a\.tgz"],
             download_verify, archive_not_kept),
        Case(9, "truncated archive", "download", download_case(True), [r"a\.tgz"], download_verify,
             archive_not_kept),
        Case(10, "checkpoint 4 classes, data 3", "test",
             lambda w, c: cli(["test", *CAM, *c.synthetic(classes=3), *TRAINER, "--trainer.logger", "false",
                               "--ckpt_path", str(c.ckpt)]), [r"(?i)4 classes|num_classes\W{0,3}4", r"\b3\b"]),
        Case(10, "image_size 0", "fit", image_size_case(0), ["image_size"]),
        Case(10, "image_size 7", "fit", image_size_case(7), ["image_size"],
             warned_about("image_size", "trained at 7 px, nothing said")),
        Case(10, "DDP 2 processes: sync_dist warnings", "fit", ddp_fit, [], sync_dist_warnings, tags=("ddp",)),
    ]
    return sorted(cases, key=lambda c: c.number)  # stable: the order within a case is kept
