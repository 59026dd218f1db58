"""Lightning callbacks: map/curve visualisation for any logger, COCO export, overlays, config logging, last.ckpt."""

from wsol_lightning.callbacks.coco_writer import COCOPredictionWriter
from wsol_lightning.callbacks.config import LoggerSaveConfigCallback
from wsol_lightning.callbacks.last_checkpoint import LastCheckpoint
from wsol_lightning.callbacks.overlay_writer import OverlayWriter
from wsol_lightning.callbacks.visualizer import MapVisualizer, log_image_to_loggers

__all__ = [
    "COCOPredictionWriter", "LastCheckpoint", "LoggerSaveConfigCallback", "MapVisualizer", "OverlayWriter",
    "log_image_to_loggers",
]
