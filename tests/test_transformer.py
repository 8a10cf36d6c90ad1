"""The network's upsampling layers: computed on the small image, equal to upsample-then-convolve."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fastst.transformer import upsample_conv


def _upsample_then_conv(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The textbook layer: nearest x2, reflection pad 1, conv 3x3."""
    up = F.interpolate(x, scale_factor=2.0, mode="nearest")
    return F.conv2d(F.pad(up, (1, 1, 1, 1), mode="reflect"), w, b)


@pytest.mark.parametrize("shape", [(2, 5, 7, 6), (1, 3, 1, 4), (1, 4, 2, 2), (3, 2, 9, 1)])
def test_upsample_conv_equals_upsampling_then_convolving(shape):
    g = torch.Generator().manual_seed(sum(shape))
    x = torch.randn(*shape, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, shape[1], 3, 3, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, generator=g, dtype=torch.float64, requires_grad=True)
    ours, reference = upsample_conv(x, w, b), _upsample_then_conv(x, w, b)
    assert ours.shape == (shape[0], 4, 2 * shape[2], 2 * shape[3])
    assert torch.allclose(ours, reference, atol=1e-12)
    # and so are the gradients, for training
    seed = torch.randn(ours.shape, generator=g, dtype=torch.float64)
    grads = torch.autograd.grad((ours * seed).sum(), (x, w, b))
    reference_grads = torch.autograd.grad((reference * seed).sum(), (x, w, b))
    for mine, theirs in zip(grads, reference_grads):
        assert torch.allclose(mine, theirs, atol=1e-10)


def test_upsample_conv_in_fp32_and_without_bias():
    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(1, 8, 16, 12, generator=g), torch.randn(5, 8, 3, 3, generator=g)
    diff = (upsample_conv(x, w, None) - _upsample_then_conv(x, w, None)).abs().max()
    assert diff < 1e-4
