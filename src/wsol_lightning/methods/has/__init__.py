"""HaS: Hide-and-Seek (Singh & Lee, ICCV 2017), a wsolevaluation baseline: CAM on images with hidden patches."""

from wsol_lightning.methods.has.model import draw_hiding_uniforms, hide_patches
from wsol_lightning.methods.has.module import HaS

__all__ = ["HaS", "draw_hiding_uniforms", "hide_patches"]
