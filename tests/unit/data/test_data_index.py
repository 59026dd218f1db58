
import numpy as np
import pytest

from wsol_lightning.data.index import DataError, boxes_to_csr
from wsol_lightning.data.metadata import read_metadata, write_metadata


def test_roundtrip_boxes_and_sizes(tmp_path):
    ids = ["a/1.jpg", "a/2.jpg", "b/3.jpg"]
    write_metadata(
        tmp_path / "val",
        ids,
        [0, 0, 1],
        sizes=[(10, 20), (30, 30), (5, 5)],
        boxes=[[[1, 2, 4, 3]], [[0, 0, 29, 29], [3, 4, 5, 6]], []],
    )
    index = read_metadata(tmp_path / "val", tmp_path, num_classes=2)
    assert index.image_ids == ids
    assert index.labels.tolist() == [0, 0, 1]
    assert index.boxes_of(0).tolist() == [[1, 2, 4, 3]]
    assert index.boxes_of(1).tolist() == [[0, 0, 29, 29], [3, 4, 5, 6]]
    assert index.boxes_of(2).shape == (0, 4)
    assert index.sizes.tolist() == [[10, 20], [30, 30], [5, 5]]
    sub = index.subset([2, 1])
    assert sub.image_ids == ["b/3.jpg", "a/2.jpg"] and sub.boxes_of(1).tolist() == [
        [0, 0, 29, 29],
        [3, 4, 5, 6],
    ]


def test_masks_with_missing_ignore(tmp_path):
    write_metadata(
        tmp_path / "test",
        ["x/1.jpg", "x/2.jpg"],
        [0, 1],
        masks=[(["x/1_m1.png", "x/1_m2.png"], "x/1_ignore.png"), (["x/2_m.png"], None)],
    )
    index = read_metadata(tmp_path / "test", tmp_path)
    assert index.mask_paths == [("x/1_m1.png", "x/1_m2.png"), ("x/2_m.png",)]
    assert index.ignore_paths == ["x/1_ignore.png", None]


def test_labels_in_another_order(tmp_path):
    d = write_metadata(tmp_path / "train", ["a", "b"], [0, 1])
    (d / "class_labels.txt").write_text("b,1\na,0")
    assert read_metadata(d, tmp_path).labels.tolist() == [0, 1]


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda d: (d / "image_ids.txt").write_text("a\nb\na"), r"image_ids.txt:3: image_id: duplicate"),
        (
            lambda d: (d / "class_labels.txt").write_text("a,0\nb,7"),
            r"class_labels.txt:2: label: 7 is out of range",
        ),
        (lambda d: (d / "localization.txt").write_text("a,0,0,9,9\nb,0,0,10,9"), r"localization.txt:2: box"),
        (
            lambda d: (d / "localization.txt").write_text("a,0,0,9,9\nzz,0,0,1,1"),
            r"localization.txt:2: image_id: 'zz' is not in image_ids.txt",
        ),
        (lambda d: (d / "class_labels.txt").unlink(), r"missing .*class_labels.txt"),
    ],
)
def test_bad_metadata_names_file_and_line(tmp_path, edit, match):
    d = write_metadata(
        tmp_path / "val",
        ["a", "b"],
        [0, 1],
        sizes=[(10, 10), (10, 10)],
        boxes=[[[0, 0, 9, 9]], [[0, 0, 9, 9]]],
    )
    edit(d)
    with pytest.raises((DataError, FileNotFoundError), match=match):
        read_metadata(d, tmp_path, num_classes=2)


def test_csr_packing():
    offsets, boxes = boxes_to_csr([[[0, 0, 1, 1]], [], [[1, 1, 2, 2], [3, 3, 4, 4]]])
    assert offsets.tolist() == [0, 1, 1, 3] and boxes.shape == (3, 4)


def test_large_train_index_reads_every_line(tmp_path):
    """A 200k-line wsolevaluation train split (ILSVRC's layout, 1000 classes) is read whole and in order.

    Time and memory at ImageNet scale (1.28M lines) are measured by ``benchmarks/index_scale.py``.
    """
    n = 200_000
    d = tmp_path / "train"
    d.mkdir()
    syn = np.arange(n) % 1000
    ids = [f"train/n{s:08d}/n{s:08d}_{i}.JPEG" for i, s in enumerate(syn.tolist())]
    (d / "image_ids.txt").write_text("\n".join(ids))
    (d / "class_labels.txt").write_text("\n".join(f"{i},{s}" for i, s in zip(ids, syn.tolist())))
    (d / "image_sizes.txt").write_text("")
    (d / "localization.txt").write_text("")
    index = read_metadata(d, tmp_path, num_classes=1000)
    assert len(index) == n and index.labels[12345] == 345 and index.labels[-1] == (n - 1) % 1000
