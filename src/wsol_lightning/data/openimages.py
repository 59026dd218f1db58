"""OpenImages30k (wsolevaluation): 100 classes, instance masks with ignore regions, PxAP.

Layout: ``data_dir`` = wsolevaluation's ``dataset/OpenImages`` (``train/ val/ test/<class>/``
images, masks next to them) and ``metadata_dir`` = ``metadata/OpenImages`` (found automatically
under ``data_dir/metadata``). ``localization.txt`` lines are ``image_id,mask_path,ignore_path``: the
instance masks of an image are unioned (object), its ignore mask minus the object is coded 255;
an empty or missing ignore path means no ignored pixel (wsolevaluation issue #33). Splits: train
(29,819, labels only), val (2,500, train-fullsup), test (5,000).
"""

from __future__ import annotations

from pathlib import Path

from wsol_lightning.data.base import WSOLDataModule
from wsol_lightning.data.cub import find_metadata_dir
from wsol_lightning.data.index import DatasetIndex, require_file
from wsol_lightning.data.metadata import class_names_from_labels, read_metadata


class OpenImagesDataModule(WSOLDataModule):
    """OpenImages30k in the wsolevaluation layout (masks on val/test).

    Args:
        data_dir: ``dataset/OpenImages`` (images; masks too unless ``mask_dir`` is given).
        metadata_dir: ``metadata/OpenImages`` (default: ``data_dir/metadata[/OpenImages]``).
        mask_dir: root of the mask paths (default ``data_dir``).
        **kwargs: :class:`~wsol_lightning.data.base.WSOLDataModule` arguments.

    """

    def __init__(
        self,
        data_dir: str | Path = "data/OpenImages",
        metadata_dir: str | Path | None = None,
        mask_dir: str | Path | None = None,
        **kwargs,
    ) -> None:
        super().__init__(data_dir, **kwargs)
        self.metadata_dir = Path(metadata_dir) if metadata_dir is not None else None
        self.mask_dir = Path(mask_dir) if mask_dir is not None else None

    def _meta(self) -> Path:
        meta = self.metadata_dir or find_metadata_dir(self.data_dir, "OpenImages")
        if meta is None:
            raise FileNotFoundError(
                "missing wsolevaluation metadata: looked for "
                f"{self.data_dir}/metadata/OpenImages/train/image_ids.txt"
            )
        return meta

    def read_class_names(self) -> list[str]:
        """Class MIDs taken from the train ids' class folders (``train/<mid>/<file>``)."""
        return class_names_from_labels(require_file(self._meta() / "train" / "class_labels.txt"))

    def build_index(self, split: str) -> DatasetIndex:
        """Index of ``split``."""
        return read_metadata(
            self._meta() / split,
            self.data_dir,
            mask_root=self.mask_dir or self.data_dir,
            num_classes=self.num_classes,
            class_names=self.class_names,
            require_localization=split != "train",
        )
