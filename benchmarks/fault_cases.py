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
from faults import Case, Run, Verdict

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


def fit_cub(work: Path, data_dir: Path, *extra: str) -> Any:
    return cli(["fit", *CAM, "--data", "CUBDataModule", "--data.data_dir", str(data_dir), "--data.image_size", "32",
                "--data.batch_size", "4", "--data.num_workers", "0", "--data.val_per_class", "1", *TRAINER,
                "--trainer.max_epochs", "1", "--trainer.logger", "false",
                "--trainer.default_root_dir", str(work / "run"), *extra])


def edit_line(path: Path, line_no: int, text: str | bytes) -> None:
    lines = path.read_bytes().split(b"\n")
    lines[line_no - 1] = text.encode() if isinstance(text, str) else text
    path.write_bytes(b"\n".join(lines))


def line(name: str, no: int) -> list[str]:
    """Culprit patterns: the file name and the line number."""
    return [re.escape(name), rf"(line |:){no}\b"]


def trained(run: Run) -> bool:
    return any((run.work / "run").rglob("*.ckpt"))


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


# ------------------------------------------------------------------------------------ 4, 5: CUB ground truth
def cub_case(edit: Any) -> Any:
    def action(work: Path, ctx: Context) -> Any:
        root = ctx.cub(work)
        edit(root)
        return fit_cub(work, root)

    return action


def late_or_clear(run: Run) -> Verdict | None:
    if all(re.search(p, run.message) for p in line("bounding_boxes.txt", 4)) and trained(run):
        return "clear error", run.message + " [only after training]"
    return None


def warned_about(name: str, wrong: str) -> Any:
    def verify(run: Run) -> Verdict:
        said = [ln for ln in run.logs.splitlines() if name in ln]
        if said:
            return "ok", "warned: " + said[0]
        return "silently wrong", wrong

    return verify


def no_metrics(split: str) -> Any:
    def verify(run: Run) -> Verdict:
        metrics = {k for k in run.value.trainer.callback_metrics if k.startswith(f"{split}/")}
        if run.said(rf"(?i)\b{split}\b.{{0,40}}(empty|no (image|sample))"):
            return "ok", f"warned about the empty {split} split"
        return "silently wrong", f"exit 0, empty {split} split, {len(metrics)} {split} metrics, nothing said"

    return verify


def empty_val(root: Path) -> None:
    edit = root / "train_test_split.txt"
    edit.write_text("".join(f"{i} {int(i in (1, 7))}\n" for i in range(1, 13)))


# ------------------------------------------------------------------------------------ 6: skip_bad
def corrupt_test(ids: list[int]) -> Any:
    def action(work: Path, ctx: Context) -> Any:
        root = ctx.cub(work)
        paths = dict(ln.split() for ln in (root / "images.txt").read_text().splitlines())
        for i in ids:
            path = root / "images" / paths[str(i)]
            path.write_bytes(path.read_bytes()[:100])
        return fit_cub(work, root, "--data.skip_bad", "true")

    return action


def counted(expected: int) -> Any:
    def verify(run: Run) -> Verdict:
        metrics = run.value.trainer.callback_metrics
        key = next((k for k in metrics if k.startswith("test/") and "skip" in k), None)
        if key is not None and int(metrics[key]) == expected:
            return "skipped+counted", f"{key} = {int(metrics[key])}"
        if key is not None:
            return "silently wrong", f"{key} = {int(metrics[key])}, {expected} were bad"
        n = len([k for k in metrics if k.startswith("test/")])
        return "silently wrong", f"{n} test metrics on {6 - expected} of 6 images, no skip count reported"

    return verify


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
def outside_root(work: Path, ctx: Context) -> Any:
    from wsol_lightning.data.fakes import write_cub_metadata

    root = ctx.cub(work)
    meta = write_cub_metadata(root, work / "meta", val_per_class=1)
    first = (meta / "test" / "image_ids.txt").read_text().splitlines()[0]
    shutil.copy(root / "images" / first, work / "x.jpg")
    for f in (meta / "test").iterdir():
        f.write_text(f.read_text().replace(first, "../../x.jpg"))
    return fit_cub(work, root / "images", "--data.metadata_dir", str(meta))


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
    from fault_predict import predict_cases

    cub_fit = "fit"
    return [
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
        Case(4, "CUB box outside the image", cub_fit,
             cub_case(lambda r: edit_line(r / "bounding_boxes.txt", 4, "4 500.0 500.0 10.0 10.0")),
             line("bounding_boxes.txt", 4), warned_about("bounding_boxes.txt", "clipped to the corner, nothing said")),
        Case(4, "CUB box with x2 < x1", cub_fit,
             cub_case(lambda r: edit_line(r / "bounding_boxes.txt", 4, "4 30.0 10.0 -5.0 8.0")),
             line("bounding_boxes.txt", 4), None, late_or_clear),
        Case(5, "NaN box", cub_fit, cub_case(lambda r: edit_line(r / "bounding_boxes.txt", 4, "4 nan 1.0 5.0 8.0")),
             line("bounding_boxes.txt", 4), warned_about("bounding_boxes.txt", "NaN box used, nothing said")),
        Case(5, "non-numeric label", cub_fit,
             cub_case(lambda r: edit_line(r / "image_class_labels.txt", 2, "2 abc")),
             line("image_class_labels.txt", 2)),
        Case(5, "extra column", cub_fit,
             cub_case(lambda r: edit_line(r / "bounding_boxes.txt", 3, "3 1.0 2.0 3.0 4.0 5.0")),
             line("bounding_boxes.txt", 3), warned_about("bounding_boxes.txt", "extra column ignored")),
        Case(5, "bad image_sizes field (metadata)", cub_fit, bad_sizes, line("image_sizes.txt", 1)),
        Case(5, "non-UTF-8 line", cub_fit,
             cub_case(lambda r: edit_line(r / "images.txt", 2, b"2 \xff\xfe.jpg")), line("images.txt", 2)),
        Case(5, "empty images.txt", cub_fit, cub_case(lambda r: (r / "images.txt").write_text("")),
             ["images.txt", r"(?i)empty|no (image|line)"]),
        Case(6, "skip_bad: a whole test batch bad", "test", corrupt_test([4, 5, 6, 10]), [r"\.jpg"], counted(4)),
        Case(6, "skip_bad: 2 of 6 test images bad", "test", corrupt_test([4, 10]), [r"\.jpg"], counted(2)),
        *predict_cases(),
        Case(8, "empty test split", "test", cub_case(lambda r: (r / "train_test_split.txt").write_text(
            "".join(f"{i} 1\n" for i in range(1, 13)))), [r"(?i)test", r"(?i)empty|no (image|sample)"],
             no_metrics("test")),
        Case(8, "empty val split", "fit", cub_case(empty_val), [r"(?i)\bval", r"(?i)empty|no (image|sample)"],
             no_metrics("val")),
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
        Case(10, "image id ../../x.jpg outside the root", cub_fit, outside_root, [re.escape("../../x.jpg")],
             lambda r: ("silently wrong", "read ../../x.jpg from outside the data root")),
        Case(10, "DDP 2 processes: sync_dist warnings", "fit", ddp_fit, [], sync_dist_warnings, tags=("ddp",)),
    ]


def bad_sizes(work: Path, ctx: Context) -> Any:
    from wsol_lightning.data.fakes import write_cub_metadata

    root = ctx.cub(work)
    meta = write_cub_metadata(root, work / "meta", val_per_class=1)
    sizes = meta / "test" / "image_sizes.txt"
    first = sizes.read_text().splitlines()[0].split(",")[0]
    edit_line(sizes, 1, f"{first},abc,40")
    return fit_cub(work, root / "images", "--data.metadata_dir", str(meta))
