"""Channels-last inference: the layers' copy-free NHWC paths compute what the plain (NCHW) ones do,
the whole network stays within the existing tolerances of the fp32 plain result at 64², 200×136 and
an odd size, and the paths the exporters and training use are left alone."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from conftest import synthetic_image
from fastst.fastconv import channels_last_eager, space_to_depth_conv, upsample_conv
from fastst.inference.stylizer import Stylizer
from fastst.transformer import ConditionalInstanceNorm, TransformerNet

CL = torch.channels_last
SIZES = [(64, 64), (136, 200), (37, 53)]


def is_nhwc(t: torch.Tensor) -> bool:
    return t.is_contiguous(memory_format=CL) and not t.is_contiguous()


def random_affine_net(seed: int = 0, num_styles: int = 2) -> TransformerNet:
    """Per-style scales and shifts far from identity, like a trained model's (harsher than the bundled one)."""
    torch.manual_seed(seed)
    net = TransformerNet(num_styles)
    with torch.no_grad():
        for norm in net.norms():
            norm.scale.uniform_(0.5, 2.0)
            norm.shift.normal_(0.0, 0.5)
    return net.eval()


def test_channels_last_eager_sees_only_nhwc_tensors():
    x = torch.rand(2, 8, 5, 6)
    assert not channels_last_eager(x)
    assert channels_last_eager(x.contiguous(memory_format=CL))
    assert not channels_last_eager(torch.rand(1, 1, 5, 6).contiguous(memory_format=CL))  # both layouts at once
    assert not channels_last_eager(torch.rand(8, 5, 6))


@pytest.mark.parametrize("batch,channels", [(1, 16), (3, 16), (2, 3)])
def test_norm_in_channels_last_equals_the_folded_instance_norm(batch, channels):
    """Wide planes stay NHWC (batch norm per sample); narrow ones (the 3-channel output norm) are
    folded as before and come out plain."""
    g = torch.Generator().manual_seed(batch)
    norm = ConditionalInstanceNorm(channels, 2).double()
    with torch.no_grad():
        norm.scale.uniform_(0.5, 2.0, generator=g)
        norm.shift.normal_(0.0, 0.5, generator=g)
    x = torch.randn(batch, channels, 9, 7, generator=g, dtype=torch.float64) * 3 + 1
    w = torch.rand(batch, 2, generator=g, dtype=torch.float64)
    plain, nhwc = norm(x, w), norm(x.contiguous(memory_format=CL), w)
    assert is_nhwc(nhwc) == (channels >= 8) and torch.allclose(nhwc, plain, atol=1e-12)


@pytest.mark.parametrize("shape", [(1, 6, 7, 5), (2, 5, 4, 4), (1, 3, 1, 4)])
def test_upsample_conv_in_channels_last_equals_the_plain_one(shape):
    g = torch.Generator().manual_seed(sum(shape))
    x = torch.randn(*shape, generator=g, dtype=torch.float64)
    w = torch.randn(4, shape[1], 3, 3, generator=g, dtype=torch.float64)
    b = torch.randn(4, generator=g, dtype=torch.float64)
    plain = upsample_conv(x, w, b)
    nhwc = upsample_conv(x.contiguous(memory_format=CL), w.contiguous(memory_format=CL), b)
    assert is_nhwc(nhwc) and torch.allclose(nhwc, plain, atol=1e-12)


@pytest.mark.parametrize("kernel,shape", [(9, (1, 5, 10, 12)), (9, (2, 3, 6, 8)), (3, (1, 4, 4, 2))])
def test_space_to_depth_conv_in_channels_last_equals_the_padded_conv(kernel, shape):
    g = torch.Generator().manual_seed(kernel + sum(shape))
    x = torch.randn(*shape, generator=g, dtype=torch.float64)
    w = torch.randn(3, shape[1], kernel, kernel, generator=g, dtype=torch.float64)
    b = torch.randn(3, generator=g, dtype=torch.float64)
    nhwc = space_to_depth_conv(x.contiguous(memory_format=CL), w, b, kernel)
    reference = F.conv2d(F.pad(x, (kernel // 2,) * 4, mode="reflect"), w, b)
    assert is_nhwc(nhwc) and torch.allclose(nhwc, reference, atol=1e-10)


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
def test_traced_network_keeps_the_plain_formulation():
    """The exporters trace the network: inside a trace the NHWC paths (batch_norm, slice copies) stay out."""
    net = TransformerNet(1, width=4).eval()
    x = torch.rand(1, 3, 16, 16).contiguous(memory_format=CL)
    with torch.no_grad():
        graph = str(torch.jit.trace(net, (x, torch.ones(1, 1)), check_trace=False).inlined_graph)
    assert "aten::instance_norm" in graph and "aten::batch_norm" not in graph and "aten::pixel_shuffle" in graph


@pytest.mark.parametrize("size", SIZES)
def test_channels_last_fp32_network_equals_the_plain_one(size):
    net = random_affine_net(size[0])
    x = torch.stack([synthetic_image(*size, seed=1), synthetic_image(*size, seed=2)])
    w = torch.tensor([[1.0, 0.0], [0.3, 0.7]])
    with torch.no_grad():
        plain = net(x, w)
        nhwc = net.to(memory_format=CL)(x.contiguous(memory_format=CL), w)
    assert nhwc.shape == plain.shape and torch.allclose(nhwc, plain, atol=1e-5)


@pytest.mark.parametrize("size", SIZES)
def test_stylizer_defaults_on_cpu_stay_within_tolerance_of_plain_fp32(size):
    """The CPU default is channels-last (and bf16 where the CPU computes it); the caller's model stays
    plain fp32. Tolerances are the bf16 test's in test_infer: max 0.08, mean 0.01 on [0, 1]."""
    net = random_affine_net(1)
    reference = Stylizer(net, device="cpu", precision="fp32", channels_last=False)
    x = synthetic_image(*size, seed=3).unsqueeze(0)
    w = reference.style_weights(1)
    want = reference.forward(x, w)
    fp32 = Stylizer(net, device="cpu", precision="fp32")
    assert fp32.channels_last and fp32.net is not net
    assert torch.allclose(fp32.forward(x, w), want, atol=1e-5)
    bf16 = Stylizer(net, device="cpu", precision="bf16")
    got = bf16.forward(x, w)
    assert got.dtype == torch.float32 and got.is_contiguous() and got.shape == want.shape
    assert (got - want).abs().max() < 0.08 and (got - want).abs().mean() < 0.01
    assert all(p.dtype == torch.float32 and p.is_contiguous() for p in net.parameters())


def test_tiles_in_channels_last_match_the_plain_tiles():
    """Tiled inference (shared norm statistics) runs the same in either layout."""
    net = random_affine_net(2)
    x = synthetic_image(96, 120, seed=4).unsqueeze(0)
    plain = Stylizer(net, device="cpu", precision="fp32", channels_last=False)
    nhwc = Stylizer(net, device="cpu", precision="fp32", channels_last=True)
    w = plain.style_weights(0)
    assert torch.allclose(nhwc.batch(x, w, tile=48), plain.batch(x, w, tile=48), atol=1e-5)
