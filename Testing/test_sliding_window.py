"""Sliding-window inference puts every tile back where it came from and blends without seams."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from WMHSegmenterLib.engine.errors import Cancelled
from WMHSegmenterLib.engine.sliding_window import fitted_patch_size, predict_sliding_window, tile_starts
from WMHSegmenterLib.engine.unet import UNet3D, UNetConfig


class ConstantLogits(nn.Module):
    """Ignores its input: any seam or gap in the blending would show up as a non-constant map."""

    def forward(self, x):
        logits = torch.tensor([0.3, -1.2, 2.0]).view(1, 3, 1, 1, 1)
        return logits.expand(x.shape[0], 3, *x.shape[2:])


def softmax(x):
    return x.softmax(1)


def test_constant_network_gives_a_constant_map_across_overlapping_tiles():
    image = torch.randn(1, 37, 50, 29)
    probabilities = predict_sliding_window(
        ConstantLogits(), image, (16, 16, 16), softmax, overlap=0.5, tile_batch=3
    )
    expected = torch.tensor([0.3, -1.2, 2.0]).softmax(0).view(3, 1, 1, 1)
    assert probabilities.shape == (3, 37, 50, 29)
    torch.testing.assert_close(probabilities, expected.expand_as(probabilities), rtol=0, atol=1e-6)


def test_pointwise_network_output_lands_on_its_own_voxels():
    network = nn.Conv3d(2, 1, 1)
    image = torch.randn(2, 21, 33, 18)
    with torch.no_grad():
        whole = network(image[None])[0]
        tiled = predict_sliding_window(
            network, image, (8, 16, 8), lambda x: x, overlap=0.3, mirror_axes=(0, 2)
        )
    torch.testing.assert_close(tiled, whole, rtol=1e-5, atol=1e-5)


def test_sliding_window_equals_one_forward_pass_when_the_volume_fits_one_patch():
    torch.manual_seed(0)
    network = UNet3D(UNetConfig(1, 2, features=(4, 8, 16))).eval()
    image = torch.randn(1, 16, 24, 20)
    with torch.no_grad():
        whole = network(image[None]).softmax(1)[0]
        tiled = predict_sliding_window(network, image, (16, 24, 20), softmax, overlap=0.5)
    torch.testing.assert_close(tiled, whole, rtol=1e-5, atol=1e-6)


def test_volume_smaller_than_the_patch_is_padded_and_cropped_back():
    image = torch.randn(1, 5, 40, 40)
    probabilities = predict_sliding_window(ConstantLogits(), image, (16, 16, 16), softmax)
    assert probabilities.shape == (3, 5, 40, 40)


@pytest.mark.parametrize("size,patch,overlap", [(100, 32, 0.5), (33, 32, 0.25), (32, 32, 0.5), (7, 32, 0.5)])
def test_tiles_cover_the_axis_and_overlap_at_least_as_asked(size, patch, overlap):
    starts = tile_starts(size, patch, overlap)
    assert starts[0] == 0 and starts[-1] + patch >= size
    for first, second in zip(starts, starts[1:]):
        assert second - first <= patch * (1 - overlap)


@pytest.mark.parametrize(
    "size,patch,align,expected",
    # by MONAI's rule: starts at multiples of int(patch * (1 - overlap)), the last one moved to size - patch
    [
        (152, 96, 8, [0, 48, 56]),
        (184, 96, 8, [0, 48, 88]),
        (64, 32, 4, [0, 16, 32]),
        (112, 64, 16, [0, 32, 48]),
    ],
)
def test_tiles_fall_where_monai_puts_them_at_half_overlap(size, patch, align, expected):
    assert tile_starts(size, patch, 0.5, align) == expected


def test_stop_request_halts_before_the_next_tile():
    image = torch.randn(1, 64, 64, 64)
    done = []
    with pytest.raises(Cancelled):
        predict_sliding_window(
            ConstantLogits(),
            image,
            (16, 16, 16),
            softmax,
            on_tile=lambda d, t: done.append(d),
            should_stop=lambda: len(done) >= 2,
        )
    assert done == [1, 2]


def test_a_volume_no_larger_than_the_networks_stride_is_segmented_by_a_real_unet():
    network = UNet3D(UNetConfig(1, 2, features=(4, 8, 16))).eval()
    stride = network.config.total_stride
    image = torch.randn(1, *(s - 1 for s in stride))
    patch = fitted_patch_size(image.shape[1:], (16, 16, 16), stride)
    with torch.no_grad():
        probabilities = predict_sliding_window(network, image, patch, softmax, align=stride)
    assert probabilities.shape == (2, *image.shape[1:])
    assert torch.isfinite(probabilities).all()
