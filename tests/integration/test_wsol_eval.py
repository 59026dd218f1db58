"""`wsol eval`: maps from a folder scored against COCO / wsolevaluation ground truth, equal to the Python metric."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from wsol_lightning.cli import main
from wsol_lightning.data.coco import COCODataModule
from wsol_lightning.data.dataset import WSOLDataset
from wsol_lightning.data.fakes.coco import write_coco_layout
from wsol_lightning.data.metadata import write_metadata
from wsol_lightning.metrics import MaxBoxAcc, PxAP

SIZE = 32


def noisy_map(seed: int, boxes: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A map that is high in (part of) the GT boxes, plus noise, quantised to k / 255 (exact in a PNG)."""
    rng = np.random.default_rng(seed)
    scoremap = rng.uniform(0, 0.5, size=shape)
    for x0, y0, x1, y1 in boxes:
        scoremap[y0 : y1 + 1, x0 + (x1 - x0) // 3 : x1 + 1] += 0.5
    scoremap = np.round(scoremap / scoremap.max() * 255) / 255
    scoremap.flat[0] = 0.0
    return scoremap


def run_eval(args: list[str], out: Path) -> dict[str, float]:
    main(["eval", *args, "--json", str(out)])
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def coco(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_coco_layout(tmp_path_factory.mktemp("coco"), num_images=6)


def test_coco_numbers_equal_the_library_eval_pipeline(coco: Path, tmp_path: Path, capsys: pytest.CaptureFixture):
    data = COCODataModule(coco, train_ann="annotations/train.json", train_images="images/train",
                          test_ann="annotations/test.json", test_images="images/test", image_size=SIZE,
                          batch_size=3, num_workers=0)
    data.setup("test")
    box, pixel = MaxBoxAcc(), PxAP()
    maps_dir = tmp_path / "maps"
    maps_dir.mkdir()
    for batch in data.test_dataloader():
        maps = []
        for k, image_id in enumerate(batch["image_id"]):
            scoremap = noisy_map(len(maps_dir.name) + k + int(batch["index"][k]), batch["boxes"][k].numpy(),
                                 (SIZE, SIZE))
            np.save(maps_dir / f"{Path(image_id).stem}.npy", scoremap)
            maps.append(torch.from_numpy(scoremap))
        box.update(torch.stack(maps), batch["boxes"])
        pixel.update(torch.stack(maps), batch["mask"])
    expected = {**{k: float(v) for k, v in box.compute().items()}, **{k: float(v) for k, v in pixel.compute().items()}}
    results = run_eval([str(maps_dir), "--coco", str(coco / "annotations/test.json"), "--image-size", str(SIZE)],
                       tmp_path / "r.json")
    for key in ("maxboxacc@30", "maxboxacc@50", "maxboxacc@70", "maxboxacc_v2", "pxap", "piou"):
        assert results[key] == pytest.approx(expected[key], abs=1e-9), key
    assert 0 < results["maxboxacc_v2"] < 100 and results["num_images"] == 6
    printed = capsys.readouterr().out
    assert "eval/maxboxacc_v2" in printed and f"{results['maxboxacc_v2']:.4f}"[:5] in printed


def test_coco_original_frame_with_numeric_ids_as_predict_writes(coco: Path, tmp_path: Path):
    data = COCODataModule(coco, train_ann="annotations/train.json", train_images="images/train",
                          test_ann="annotations/test.json", test_images="images/test")
    index = data.build_index("test")
    dataset = WSOLDataset(index)  # no transform: the original frame
    numeric = {im["file_name"]: im["id"] for im in json.loads((coco / "annotations/test.json").read_text())["images"]}
    box = MaxBoxAcc()
    for i in range(len(dataset)):
        sample = dataset[i]
        height, width = sample["image"].shape[-2:]
        scoremap = noisy_map(i, sample["boxes"].numpy(), (height, width))
        np.save(tmp_path / f"{numeric[index.image_ids[i]]:08d}.npy", scoremap)
        box.update(torch.from_numpy(scoremap)[None], [sample["boxes"]])
    results = run_eval([str(tmp_path), "--coco", str(coco / "annotations/test.json"), "--frame", "original"],
                       tmp_path / "r.json")
    assert results["maxboxacc_v2"] == pytest.approx(float(box.compute()["maxboxacc_v2"]), abs=1e-9)


def test_wsolevaluation_metadata_with_png_maps(tmp_path: Path):
    sizes = [(50, 40), (64, 30), (33, 45)]
    ids = [f"001.Bird/img_{k}.jpg" for k in range(3)]
    boxes = [[[5, 4, 30, 35]], [[10, 2, 60, 25], [0, 0, 8, 8]], [[3, 10, 32, 44]]]
    write_metadata(tmp_path / "meta", ids, [0, 0, 0], sizes=sizes, boxes=boxes)
    box = MaxBoxAcc(iou_thresholds=(50,), multi_contour=False)
    for k, (image_id, (w, h)) in enumerate(zip(ids, sizes)):
        scaled = np.array([[int(x0 * SIZE / w), int(y0 * SIZE / h), int(x1 * SIZE / w), int(y1 * SIZE / h)]
                           for x0, y0, x1, y1 in boxes[k]])  # wsolevaluation's resize_bbox, by hand
        scoremap = noisy_map(k, scaled, (SIZE, SIZE))
        path = tmp_path / "maps" / Path(image_id).with_suffix(".png")
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.round(scoremap * 255).astype(np.uint8)).save(path)
        box.update(torch.from_numpy(scoremap)[None], [torch.from_numpy(scaled)])
    results = run_eval([str(tmp_path / "maps"), "--metadata", str(tmp_path / "meta"), "--image-size", str(SIZE),
                        "--iou-thresholds", "50", "--largest-contour"], tmp_path / "r.json")
    assert results["maxboxacc@50"] == pytest.approx(float(box.compute()["maxboxacc@50"]), abs=1e-9)
    assert "pxap" not in results  # boxes only: no mask, no PxAP


@pytest.mark.parametrize("case, message", [
    ("missing", r"no map for image 'test_003.jpg'"),
    ("shape", r"test_003.npy: shape \(20, 32\), expected \(32, 32\)"),
    ("nan", r"test_003.npy: 1 NaN/inf values"),
    ("range", r"test_003.npy: values in \[0, 2\], expected \[0, 1\].*--normalize"),
    ("rgb", r"test_003.png: a 3-channel PNG"),
])
def test_bad_maps_are_named(coco: Path, tmp_path: Path, case: str, message: str):
    for k in range(6):
        np.save(tmp_path / f"test_{k:03d}.npy", np.linspace(0, 1, SIZE * SIZE).reshape(SIZE, SIZE))
    bad = tmp_path / "test_003.npy"
    if case == "missing":
        bad.unlink()
    elif case == "shape":
        np.save(bad, np.zeros((20, SIZE)))
    elif case == "nan":
        values = np.linspace(0, 1, SIZE * SIZE).reshape(SIZE, SIZE)
        values[3, 3] = np.nan
        np.save(bad, values)
    elif case == "range":
        np.save(bad, np.linspace(0, 2, SIZE * SIZE).reshape(SIZE, SIZE))
    else:
        bad.unlink()
        Image.fromarray(np.zeros((SIZE, SIZE, 3), np.uint8)).save(tmp_path / "test_003.png")
    with pytest.raises(SystemExit, match=message):
        main(["eval", str(tmp_path), "--coco", str(coco / "annotations/test.json"), "--image-size", str(SIZE)])


def test_normalize_accepts_raw_maps(coco: Path, tmp_path: Path):
    for k in range(6):
        np.save(tmp_path / f"test_{k:03d}.npy", 5.0 * np.linspace(-1, 1, SIZE * SIZE).reshape(SIZE, SIZE))
    results = run_eval([str(tmp_path), "--coco", str(coco / "annotations/test.json"), "--image-size", str(SIZE),
                        "--normalize"], tmp_path / "r.json")
    assert results["num_images_with_boxes"] == 6


def test_wsolevaluation_metadata_masks_give_pxap_with_ignored_pixels(tmp_path: Path):
    import cv2

    sizes = [(48, 40), (30, 36)]
    ids = [f"cls/img_{k}.jpg" for k in range(2)]
    pxap = PxAP()
    entries = []
    (tmp_path / "maps" / "cls").mkdir(parents=True)
    for k, (w, h) in enumerate(sizes):
        obj = np.zeros((h, w), np.uint8)
        obj[5 + k : 25, 8 : 20 + k] = 255
        ignore = np.zeros((h, w), np.uint8)
        ignore[0:4, :] = 255
        (tmp_path / "masks" / "cls").mkdir(parents=True, exist_ok=True)
        Image.fromarray(obj).save(tmp_path / "masks" / "cls" / f"m{k}.png")
        Image.fromarray(ignore).save(tmp_path / "masks" / "cls" / f"i{k}.png")
        entries.append(([f"cls/m{k}.png"], f"cls/i{k}.png"))
        truth = (obj > 0).astype(np.uint8)
        truth[(ignore > 0) & (obj == 0)] = 255
        truth = cv2.resize(truth, (SIZE, SIZE), interpolation=cv2.INTER_NEAREST)  # wsolevaluation: nearest
        scoremap = noisy_map(k, np.array([[8, 5, 20, 25]]) * SIZE // max(w, h), (SIZE, SIZE))
        np.save(tmp_path / "maps" / "cls" / f"img_{k}.npy", scoremap)  # the id without its extension
        pxap.update(torch.from_numpy(scoremap)[None], torch.from_numpy(truth)[None])
    write_metadata(tmp_path / "meta", ids, [0, 0], sizes=sizes, masks=entries)
    results = run_eval([str(tmp_path / "maps"), "--metadata", str(tmp_path / "meta"), "--mask-root",
                        str(tmp_path / "masks"), "--image-size", str(SIZE)], tmp_path / "r.json")
    expected = {k: float(v) for k, v in pxap.compute().items()}
    assert results["pxap"] == pytest.approx(expected["pxap"], abs=1e-9) and 0 < results["pxap"] < 100
    assert results["piou"] == pytest.approx(expected["piou"], abs=1e-9)
    assert "maxboxacc_v2" not in results and results["num_images_with_masks"] == 2
