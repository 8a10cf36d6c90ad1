"""The network's rewritten layers: the upsampling convs computed on the small image equal upsample-then-
convolve; the output conv computed on the space-to-depth image equals the reflection-padded conv."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fastst.transformer import TransformerNet, space_to_depth_conv, upsample_conv


def _upsample_then_conv(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The textbook layer: nearest x2, reflection pad 1, conv 3x3."""
    up = F.interpolate(x, scale_factor=2.0, mode="nearest")
    return F.conv2d(F.pad(up, (1, 1, 1, 1), mode="reflect"), w, b)


def _assert_same_values_and_gradients(ours: torch.Tensor, reference: torch.Tensor,
                                      inputs: tuple[torch.Tensor, ...], g: torch.Generator) -> None:
    """Equal outputs, and equal gradients with respect to every input for one random output
    gradient: the rewritten layer trains exactly like the textbook one (fp64 tolerances)."""
    assert ours.shape == reference.shape
    assert torch.allclose(ours, reference, atol=1e-12)
    seed = torch.randn(ours.shape, generator=g, dtype=torch.float64)
    grads = torch.autograd.grad((ours * seed).sum(), inputs)
    reference_grads = torch.autograd.grad((reference * seed).sum(), inputs)
    for mine, theirs in zip(grads, reference_grads):
        assert torch.allclose(mine, theirs, atol=1e-10)


@pytest.mark.parametrize("shape", [(2, 5, 7, 6), (1, 3, 1, 4), (1, 4, 2, 2), (3, 2, 9, 1)])
def test_upsample_conv_equals_upsampling_then_convolving(shape):
    g = torch.Generator().manual_seed(sum(shape))
    x = torch.randn(*shape, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, shape[1], 3, 3, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, generator=g, dtype=torch.float64, requires_grad=True)
    ours, reference = upsample_conv(x, w, b), _upsample_then_conv(x, w, b)
    assert ours.shape == (shape[0], 4, 2 * shape[2], 2 * shape[3])
    _assert_same_values_and_gradients(ours, reference, (x, w, b), g)


def test_upsample_conv_in_fp32_and_without_bias():
    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(1, 8, 16, 12, generator=g), torch.randn(5, 8, 3, 3, generator=g)
    diff = (upsample_conv(x, w, None) - _upsample_then_conv(x, w, None)).abs().max()
    assert diff < 1e-4


@pytest.mark.parametrize("kernel,shape", [(9, (2, 5, 10, 12)), (9, (1, 3, 6, 8)), (3, (1, 4, 4, 2)), (5, (3, 2, 8, 8))])
def test_space_to_depth_conv_equals_the_padded_conv(kernel, shape):
    g = torch.Generator().manual_seed(kernel + sum(shape))
    x = torch.randn(*shape, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, shape[1], kernel, kernel, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, generator=g, dtype=torch.float64, requires_grad=True)
    ours = space_to_depth_conv(x, w, b, kernel)
    reference = F.conv2d(F.pad(x, (kernel // 2,) * 4, mode="reflect"), w, b)
    assert ours.shape == (shape[0], 3, shape[2], shape[3])
    _assert_same_values_and_gradients(ours, reference, (x, w, b), g)


def test_output_layer_equals_the_plain_conv_norm_layer():
    torch.manual_seed(0)
    net = TransformerNet(num_styles=2).eval()
    x, w = torch.rand(2, 32, 12, 16), torch.tensor([[1.0, 0.0], [0.3, 0.7]])
    out = net.out
    plain = out.norm(out.conv(x), w)  # nn.Conv2d with padding_mode="reflect", then the norm
    assert out.space_to_depth and torch.allclose(out(x, w), plain, atol=1e-5)
    out.space_to_depth = False  # what the exporters run
    assert torch.equal(out(x, w), plain)


def test_width_sets_every_layer_s_channels():
    """`width` w: convs of w, 2w and 4w channels down, 4w in the residual blocks, 2w and w up; the
    default is Johnson et al.'s 32 (1.69 M parameters with four styles' norms and input-skip gains)."""
    net = TransformerNet(num_styles=4)
    assert net.width == 32 and sum(p.numel() for p in net.parameters()) == 1_688_859 + 4 * 3
    narrow = TransformerNet(num_styles=1, width=8)
    channels = [m.conv.out_channels for m in (*narrow.down, narrow.residual[4].b, *narrow.up, narrow.out)]
    assert channels == [8, 16, 32, 32, 16, 8, 3]
    x = torch.rand(1, 3, 20, 28)
    assert narrow(x, torch.ones(1, 1)).shape == x.shape
    with pytest.raises(ValueError, match="width"):
        TransformerNet(width=0)
