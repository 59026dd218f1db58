"""Attentive erasing: where it erases, how often, with which probability, and its gradient."""

import pytest
import torch

from wsol_lightning.methods.ornet.erasing import ErasingUniforms, attentive_erase


def blob_maps(batch: int, size: int = 40, seed: int = 0) -> torch.Tensor:
    """Maps with a random-centred 0.9 disk of radius 7 and a 0.95 peak at its centre, on 0.05.

    S (the pixels above tau = 0.95 - alpha 0.9) is the whole disk as soon as alpha > 0.05 / 0.9.
    """
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randint(10, size - 10, (batch, 2), generator=gen)
    ys = torch.arange(size)[None, :, None]
    xs = torch.arange(size)[None, None, :]
    dist = (ys - centres[:, 0, None, None]) ** 2 + (xs - centres[:, 1, None, None]) ** 2
    maps = torch.where(dist <= 49, 0.9, 0.05)
    maps[dist == 0] = 0.95
    return maps[:, None]


def test_erased_set_is_inside_the_above_threshold_region_and_the_peak_rectangle():
    maps = blob_maps(64)
    out = attentive_erase(maps, erase_prob=1.0, per_sample_alpha=True, generator=torch.Generator().manual_seed(1))
    p = maps[:, 0]
    flat = p.flatten(1)
    tau = flat.amax(1) - out.alpha * (flat.amax(1) - flat.amin(1))
    assert torch.allclose(out.threshold, tau)
    assert torch.equal(out.above, p > tau[:, None, None])
    assert not (out.region & ~out.above).any()            # E inside S
    assert not (out.dropped & ~out.region).any()           # drops only inside E
    assert torch.equal(out.erased, out.valid) and out.valid.float().mean() > 0.8
    assert torch.equal(out.region.flatten(1).any(1), out.erased)
    for b in torch.nonzero(out.erased)[:, 0].tolist():  # E is a rectangle (within S) around the peak
        ys, xs = torch.nonzero(out.region[b], as_tuple=True)
        peak = int(flat[b].argmax())
        py, px = peak // p.shape[-1], peak % p.shape[-1]
        assert ys.min() <= py <= ys.max() and xs.min() <= px <= xs.max()
        # half-size h >= min_half = 4 and the released rectangle keeps |row - peak| < h: offsets reach 3
        assert (ys - py).abs().max() >= 3 and (xs - px).abs().max() >= 3


def test_drop_probability_equals_rescaled_activation_and_outside_is_rescaled_only():
    maps = torch.full((256, 1, 24, 24), 0.1)
    maps[:, :, 4:20, 4:20] = 0.9                              # S = the 16x16 square (for any alpha > 0)
    maps[:, :, 12, 12] = 0.95                                  # a unique peak
    out = attentive_erase(maps, erase_prob=1.0, alpha_max=0.5, per_sample_alpha=True,
                          generator=torch.Generator().manual_seed(0))
    assert out.erased.float().mean() > 0.8
    inside = out.region & (maps[:, 0] == 0.9)
    rate = out.dropped[inside].float().mean()
    assert float(rate) == pytest.approx(0.6 * 0.9 + 0.2, abs=0.01)   # drop prob = a = 0.74
    expected = 0.6 * maps + 0.2
    kept = ~out.dropped[:, None]
    assert torch.allclose(out.maps[kept], expected[kept])
    assert (out.maps[~kept] == 0).all()
    assert out.maps.min() >= 0 and out.maps.max() <= 0.8 + 1e-6


def test_half_of_the_images_are_erased_and_alpha_is_uniform():
    maps = blob_maps(2000, seed=3)
    out = attentive_erase(maps, per_sample_alpha=True, generator=torch.Generator().manual_seed(5))
    assert out.valid.float().mean() > 0.85
    assert float(out.erased[out.valid].float().mean()) == pytest.approx(0.5, abs=0.04)
    assert not out.region[~out.erased].any()
    assert 0 <= float(out.alpha.min()) and float(out.alpha.max()) <= 0.5
    assert float(out.alpha.mean()) == pytest.approx(0.25, abs=0.02)


def test_shared_alpha_by_default_and_per_sample_on_request():
    maps = blob_maps(8)
    shared = attentive_erase(maps, generator=torch.Generator().manual_seed(0))
    assert torch.unique(shared.alpha).numel() == 1
    own = attentive_erase(maps, per_sample_alpha=True, generator=torch.Generator().manual_seed(0))
    assert torch.unique(own.alpha).numel() == 8


def test_generator_makes_it_reproducible():
    maps = blob_maps(16)
    a = attentive_erase(maps, generator=torch.Generator().manual_seed(7))
    b = attentive_erase(maps, generator=torch.Generator().manual_seed(7))
    c = attentive_erase(maps, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a.maps, b.maps) and torch.equal(a.region, b.region)
    assert not torch.equal(a.maps, c.maps)


def test_too_small_regions_are_not_erased_but_still_rescaled():
    maps = torch.full((4, 1, 12, 12), 0.1)
    maps[:, :, 5:7, 5:7] = 0.9          # S spans 2 rows: no half-size >= 4 fits
    out = attentive_erase(maps, erase_prob=1.0, generator=torch.Generator().manual_seed(0))
    assert not out.valid.any() and not out.erased.any() and not out.region.any()
    assert torch.allclose(out.maps, 0.6 * maps + 0.2)


def test_gradient_is_rescale_times_the_kept_mask():
    maps = blob_maps(4).requires_grad_()
    out = attentive_erase(maps, erase_prob=1.0, generator=torch.Generator().manual_seed(2))
    out.maps.sum().backward()
    assert torch.allclose(maps.grad[:, 0], 0.6 * (~out.dropped).float())
    assert out.dropped.any()


def test_accepts_three_dimensional_maps_and_rejects_others():
    maps = blob_maps(2)[:, 0]
    assert attentive_erase(maps).maps.shape == maps.shape
    with pytest.raises(ValueError, match="maps must be"):
        attentive_erase(maps[0])


def test_released_geometry_on_a_hand_computed_map():
    """Extent = max - min, rows max(c - h, 0) < r < c + h (exclusive), row/column 0 never erased."""
    maps = torch.full((1, 1, 20, 20), 0.1)
    maps[0, 0, 0:12, 0:14] = 0.9     # S: rows 0..11 (extent 11), columns 0..13 (extent 13)
    maps[0, 0, 2, 3] = 0.95           # the peak, near the corner
    # half_h = 4 + floor(0.5 * (11 // 2 - 4)) = 4; half_w = 4 + floor(0.99 * (13 // 2 - 4)) = 5
    u = ErasingUniforms(alpha=torch.tensor([0.5]), coin=torch.tensor([0.0]), half_h=torch.tensor([0.5]),
                        half_w=torch.tensor([0.99]), noise=torch.ones(1, 20, 20))
    out = attentive_erase(maps, uniforms=u)
    expected = torch.zeros(20, 20, dtype=torch.bool)
    expected[1:6, 1:8] = True         # rows 0 < r < 2 + 4, columns 0 < c < 3 + 5
    assert torch.equal(out.region[0], expected)
    assert torch.equal(out.dropped[0], expected)  # a pixel is kept iff noise < 1 - a: noise 1 drops all of E
    assert out.erased.tolist() == [True] and out.valid.tolist() == [True]


def test_a_single_pixel_erase_set_is_not_erased_as_released():
    maps = torch.full((1, 1, 20, 20), 0.1)
    maps[0, 0, 0:11, 0] = 0.9         # S: column 0 only (never erased) plus one pixel in column 1
    maps[0, 0, 0:11, 10] = 0.9        # a far column makes the width extent 10 (valid)
    maps[0, 0, 5, 1] = 0.95           # the peak; E = S & R = {(5, 1)}, a single pixel
    u = ErasingUniforms(alpha=torch.tensor([0.5]), coin=torch.tensor([0.0]), half_h=torch.tensor([0.0]),
                        half_w=torch.tensor([0.0]), noise=torch.ones(1, 20, 20))
    out = attentive_erase(maps, uniforms=u)
    assert out.valid.tolist() == [True] and out.erased.tolist() == [False]
    assert not out.region.any() and torch.allclose(out.maps, 0.6 * maps + 0.2)
