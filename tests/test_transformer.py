"""The network's rewritten layers: the upsampling convs computed on the small image equal upsample-then-
convolve; the output conv computed on the space-to-depth image equals the reflection-padded conv."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fastst.fastconv import space_to_depth_conv, upsample_conv
from fastst.transformer import TransformerNet


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


def _reference_forward(net: TransformerNet, image: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """The network as the Turi Create / Johnson et al. papers draw it, written out with plain functional ops
    from its parameters: reflection-padded convs, instance norm whose scale and shift are the style-weighted
    rows of each norm's tables, ReLUs, 5 residual blocks x + b(a(x)), nearest x2 upsampling then a 3x3 conv,
    a 9x9 output conv; then fastst's input skip (the style-weighted gain times the logit of the input clamped
    to [1e-3, 1 - 1e-3], added to the output's logits) and the sigmoid, or the clamp of imported models.
    Sides padded to a multiple of 4."""
    def conv(x, layer, stride=1):
        k = layer.conv.kernel_size[0]
        return F.conv2d(F.pad(x, (k // 2,) * 4, mode="reflect"), layer.conv.weight, layer.conv.bias, stride)

    def norm(x, layer):
        mean = x.mean(dim=(2, 3), keepdim=True)
        var = ((x - mean) ** 2).mean(dim=(2, 3), keepdim=True)
        scale, shift = style @ layer.norm.scale, style @ layer.norm.shift  # (N, C)
        return (x - mean) / torch.sqrt(var + 1e-5) * scale[:, :, None, None] + shift[:, :, None, None]

    h, w = image.shape[-2:]
    x = F.pad(image, (0, -w % 4, 0, -h % 4), mode="reflect")
    for layer, stride in zip(net.down, (1, 2, 2)):
        x = torch.relu(norm(conv(x, layer, stride), layer))
    for block in net.residual:
        y = torch.relu(norm(conv(x, block.a), block.a))
        x = x + norm(conv(y, block.b), block.b)
    for layer in net.up:
        x = torch.relu(norm(conv(x.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3), layer), layer))
    x = conv(x, net.out)
    if net.output == "clamp":
        return x.clamp(0, 1)[..., :h, :w]
    p = image.clamp(1e-3, 1 - 1e-3)
    skip = (style @ net.skip)[:, :, None, None] * torch.log(p / (1 - p))
    return torch.sigmoid(norm(x, net.out) + F.pad(skip, (0, -w % 4, 0, -h % 4), mode="reflect"))[..., :h, :w]


@pytest.mark.parametrize("output,size", [("sigmoid", (36, 52)), ("sigmoid", (29, 43)), ("clamp", (32, 24))])
def test_network_equals_a_reference_forward_written_from_the_papers(output, size):
    """The whole network, residual paths and input skip included, against `_reference_forward` in fp64, for
    a batch with a one-hot and a blended style; norm tables far from identity, so every layer's scale and
    shift count, and the second style's skip open."""
    torch.manual_seed(3)
    net = TransformerNet(num_styles=2, width=8, output=output).double().eval()
    g = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for n in net.norms():
            n.scale.copy_(0.5 + torch.rand(n.scale.shape, generator=g, dtype=torch.float64))
            n.shift.copy_(torch.randn(n.shift.shape, generator=g, dtype=torch.float64) * 0.3)
        if output == "clamp":
            net.out.conv.bias.fill_(0.5)  # an output around the middle of [0, 1], mostly not clamped
        net.skip.copy_(torch.tensor([[0.0, 0.0, 0.0], [0.8, 0.5, 1.0]], dtype=torch.float64))  # one row's skip open
    image = torch.rand(2, 3, *size, generator=g, dtype=torch.float64)
    style = torch.tensor([[1.0, 0.0], [0.3, 0.7]], dtype=torch.float64)
    with torch.no_grad():
        got, expected = net(image, style), _reference_forward(net, image, style)
    assert got.shape == expected.shape == image.shape
    assert float(expected.std()) > 0.02  # a picture, not a constant
    assert torch.allclose(got, expected, atol=1e-10)
