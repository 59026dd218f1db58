import filecmp

import numpy as np
import torch

from wsol_lightning.data import SyntheticDataModule, UnpaddedDistributedSampler
from wsol_lightning.data.collate import wsol_collate


def _files(root):
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


def test_generation_is_deterministic_and_cached(tmp_path):
    a = SyntheticDataModule(tmp_path / "a", num_classes=4, images_per_class=150)
    root = a.ensure_generated()
    b = SyntheticDataModule(tmp_path / "b", num_classes=4, images_per_class=150).ensure_generated()
    files = _files(root)
    assert len([f for f in files if f.suffix == ".jpg"]) == 600
    assert files == _files(b)
    _, mismatch, errors = filecmp.cmpfiles(root, b, [str(f) for f in files], shallow=False)
    assert not mismatch and not errors
    stamp = (root / "params.json").stat().st_mtime_ns
    SyntheticDataModule(tmp_path / "a", num_classes=4, images_per_class=150).ensure_generated()
    assert (root / "params.json").stat().st_mtime_ns == stamp  # reused, not rewritten
    other = SyntheticDataModule(tmp_path / "a", num_classes=4, images_per_class=150, seed=1)
    assert other.dataset_root != root


def test_loads_through_cub_path(tmp_path):
    dm = SyntheticDataModule(tmp_path, num_classes=3, images_per_class=20, image_size=32, batch_size=8)
    assert dm.num_classes == 3 and dm.class_names == ["disc", "square", "triangle"]
    dm.prepare_data()
    dm.setup("fit")
    dm.setup("test")
    ids = [set(dm.datasets[s].index.image_ids) for s in ("train", "val", "test")]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (8, 3, 32, 32) and "mask" not in batch  # training reads labels only
    assert next(iter(dm.test_dataloader()))["mask"].shape == (8, 32, 32)
    s = dm.datasets["test"][0]
    ys, xs = np.nonzero(s["mask"].numpy() == 1)
    box = s["boxes"][0].tolist()
    # box scaled by int() truncation, mask by nearest: they agree up to the resampling step (2.5 px)
    assert np.abs(np.array(box) - [xs.min(), ys.min(), xs.max(), ys.max()]).max() <= 3


def test_background_correlation(tmp_path):
    dm = SyntheticDataModule(tmp_path, num_classes=3, images_per_class=12, background_correlation=1.0)
    dm.prepare_data()
    from wsol_lightning.data.dataset import WSOLDataset

    ds = WSOLDataset(dm.build_index("test"))
    by_class = {}
    for i in range(len(ds)):
        s = ds[i]
        bg = s["image"].permute(1, 2, 0)[s["mask"] == 0].mean(0)
        by_class.setdefault(int(s["label"]), []).append(bg)
    means = {c: torch.stack(v).mean(0) for c, v in by_class.items()}
    spread = max(torch.stack(v).std(0).max().item() for v in by_class.values())
    assert min((means[a] - means[b]).abs().max().item() for a in means for b in means if a < b) > spread


def test_unpadded_sampler_no_duplicates():
    data = list(range(10))
    parts = [list(UnpaddedDistributedSampler(data, num_replicas=3, rank=r)) for r in range(3)]
    assert parts == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]
    assert sorted(sum(parts, [])) == data
    assert len(UnpaddedDistributedSampler(data, num_replicas=3, rank=1)) == 3


def test_collate_all_skipped_and_partial_masks():
    assert wsol_collate([None, None]) == {"num_skipped": 2}
    s = {
        "image": torch.zeros(3, 4, 4),
        "label": torch.tensor(0),
        "boxes": torch.zeros(0, 4, dtype=torch.long),
        "index": torch.tensor(0),
        "image_id": "a",
        "orig_size": torch.tensor([4, 4]),
    }
    with_mask = dict(s, mask=torch.zeros(4, 4, dtype=torch.uint8))
    assert "mask" not in wsol_collate([s, with_mask])
    assert wsol_collate([with_mask, with_mask])["mask"].shape == (2, 4, 4)
