"""Issue 14 case 7: the shared image reader decodes 16-bit, palette, transparent and CMYK images correctly."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from wsol_lightning.data.dataset import read_image
from wsol_lightning.data.index import DataError


def test_16bit_grayscale_is_scaled_not_saturated(tmp_path):
    ramp = np.linspace(0, 65535, 64 * 64).round().astype(np.uint16).reshape(64, 64)
    Image.fromarray(ramp).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode == "I;16"
    rgb = read_image(tmp_path / "g16.png")
    assert rgb.shape == (64, 64, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb[..., 0], np.rint(ramp / 257.0).astype(np.uint8))  # 65535 -> 255
    assert (rgb == 255).mean() < 0.01  # Pillow's convert("RGB") made 99.6% of these pixels 255


def test_16bit_colour_keeps_its_channels(tmp_path):
    bgr = np.zeros((4, 4, 3), np.uint16)
    bgr[..., 0], bgr[..., 1], bgr[..., 2] = 65535, 32896, 257  # B, G, R = 255, 128, 1 in 8 bits
    cv2.imwrite(str(tmp_path / "c16.png"), bgr)
    np.testing.assert_array_equal(read_image(tmp_path / "c16.png")[0, 0], [1, 128, 255])


def test_palette_images_read_their_colours(tmp_path):
    im = Image.new("P", (4, 2))
    im.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    im.putdata([0, 1, 0, 1, 1, 1, 0, 0])
    im.save(tmp_path / "p.png")
    rgb = read_image(tmp_path / "p.png")
    np.testing.assert_array_equal(rgb[0, :2], [[10, 20, 30], [200, 100, 50]])
    im.info["transparency"] = 0  # palette entry 0 transparent: composited onto white
    im.save(tmp_path / "pt.png", transparency=0)
    np.testing.assert_array_equal(read_image(tmp_path / "pt.png")[0, :2], [[255, 255, 255], [200, 100, 50]])


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_transparency_is_composited_onto_white(tmp_path, mode):
    channels = 4 if mode == "RGBA" else 2
    data = np.full((2, 2, channels), 100, np.uint8)
    data[..., -1] = [[255, 0], [128, 255]]  # opaque, transparent, half
    Image.fromarray(data, mode).save(tmp_path / "a.png")
    rgb = read_image(tmp_path / "a.png")
    assert rgb[0, 0].tolist() == [100] * 3 and rgb[0, 1].tolist() == [255] * 3
    assert abs(int(rgb[1, 0, 0]) - round(100 * 128 / 255 + 255 * 127 / 255)) <= 1


def test_cmyk_reads_as_its_rgb_colour(tmp_path):
    cmyk = Image.new("CMYK", (8, 8), (0, 255, 255, 0))  # pure red
    cmyk.save(tmp_path / "c.tif")
    cmyk.save(tmp_path / "c.jpg", quality=95)
    assert read_image(tmp_path / "c.tif")[0, 0].tolist() == [255, 0, 0]
    assert np.abs(read_image(tmp_path / "c.jpg")[4, 4].astype(int) - [255, 0, 0]).max() <= 8


def test_float_and_32bit_images(tmp_path):
    Image.fromarray(np.full((2, 2), 0.5, np.float32), "F").save(tmp_path / "f.tif")
    assert read_image(tmp_path / "f.tif")[0, 0].tolist() == [128] * 3  # [0, 1] floats scaled by 255
    Image.fromarray(np.full((2, 2), 200, np.int32), "I").save(tmp_path / "i.tif")
    assert read_image(tmp_path / "i.tif")[0, 0].tolist() == [200] * 3  # 8-bit values in an I image kept


def test_unreadable_files_are_named(tmp_path):
    (tmp_path / "x.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(DataError, match=r"unreadable or truncated image: .*x\.png"):
        read_image(tmp_path / "x.png")
