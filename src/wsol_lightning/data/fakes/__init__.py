"""Writers of tiny copies of each dataset in its real on-disk layout (for tests and demos)."""

from wsol_lightning.data.fakes.coco import write_coco_layout
from wsol_lightning.data.fakes.cub import (
    FakeSample,
    write_cub_files,
    write_cub_layout,
    write_cub_metadata,
    write_jpg,
    write_png,
)
from wsol_lightning.data.fakes.imagenet import (
    write_imagenet_metadata_layout,
    write_imagenet_official_layout,
    write_openimages_layout,
)
from wsol_lightning.data.fakes.pets import write_pets_layout
from wsol_lightning.data.fakes.voc import write_voc_layout

__all__ = [
    "FakeSample",
    "write_coco_layout",
    "write_cub_files",
    "write_cub_layout",
    "write_cub_metadata",
    "write_imagenet_metadata_layout",
    "write_imagenet_official_layout",
    "write_jpg",
    "write_openimages_layout",
    "write_png",
    "write_voc_layout",
    "write_pets_layout",
]
