"""Lightning callbacks: map/curve visualisation for any logger, COCO prediction export, config logging, last.ckpt."""

from wsol_lightning.callbacks.coco_writer import COCOPredictionWriter
from wsol_lightning.callbacks.config import LoggerSaveConfigCallback
from wsol_lightning.callbacks.last_checkpoint import LastCheckpoint
from wsol_lightning.callbacks.visualizer import MapVisualizer, log_image_to_loggers

__all__ = [
    "COCOPredictionWriter", "LastCheckpoint", "LoggerSaveConfigCallback", "MapVisualizer", "log_image_to_loggers",
]
