"""Issue 14's data cases (4, 5, 6, 8 and the image-id part of 10) for ``faults.py``: a fake CUB_200_2011 broken
one way per case, then ``wsol fit`` (which tests after fitting)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

from fault_cases import CAM, TRAINER, Context, cli
from faults import Case, Run, Verdict, warned_about


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


def outside_root(work: Path, ctx: Context) -> Any:
    from wsol_lightning.data.fakes import write_cub_metadata

    root = ctx.cub(work)
    meta = write_cub_metadata(root, work / "meta", val_per_class=1)
    first = (meta / "test" / "image_ids.txt").read_text().splitlines()[0]
    shutil.copy(root / "images" / first, work / "x.jpg")
    for f in (meta / "test").iterdir():
        f.write_text(f.read_text().replace(first, "../../x.jpg"))
    return fit_cub(work, root / "images", "--data.metadata_dir", str(meta))


def bad_sizes(work: Path, ctx: Context) -> Any:
    from wsol_lightning.data.fakes import write_cub_metadata

    root = ctx.cub(work)
    meta = write_cub_metadata(root, work / "meta", val_per_class=1)
    sizes = meta / "test" / "image_sizes.txt"
    first = sizes.read_text().splitlines()[0].split(",")[0]
    edit_line(sizes, 1, f"{first},abc,40")
    return fit_cub(work, root / "images", "--data.metadata_dir", str(meta))


def data_cases() -> list[Case]:
    """Rows of cases 4, 5, 6, 8 and 10 (image id outside the root)."""
    cub_fit = "fit"
    return [
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
        Case(8, "empty test split", "test", cub_case(lambda r: (r / "train_test_split.txt").write_text(
            "".join(f"{i} 1\n" for i in range(1, 13)))), [r"(?i)test", r"(?i)empty|no (image|sample)"],
             no_metrics("test")),
        Case(8, "empty val split", "fit", cub_case(empty_val), [r"(?i)\bval", r"(?i)empty|no (image|sample)"],
             no_metrics("val")),
        Case(10, "image id ../../x.jpg outside the root", cub_fit, outside_root, [re.escape("../../x.jpg")],
             lambda r: ("silently wrong", "read ../../x.jpg from outside the data root")),
    ]
