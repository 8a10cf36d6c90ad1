"""Perceptual loss pieces on tensors small enough to compute by hand."""
from __future__ import annotations

import pytest
import torch

from fastst.losses import blended_grams, content_loss, gram_loss, gram_matrix, style_loss, total_variation


def test_gram_matrix_hand_computed():
    # two channels, one row, two columns: F = [[1, 2], [3, 4]]; F Fᵀ = [[5, 11], [11, 25]]; C·H·W = 4
    f = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 2, 1, 2)
    g = gram_matrix(f)
    assert g.shape == (1, 2, 2)
    assert torch.allclose(g, torch.tensor([[[1.25, 2.75], [2.75, 6.25]]]))


def test_gram_matrix_is_per_sample_symmetric_and_spatially_invariant():
    gen = torch.Generator().manual_seed(0)
    f = torch.randn(3, 4, 5, 6, generator=gen)
    g = gram_matrix(f)
    assert g.shape == (3, 4, 4)
    assert torch.allclose(g, g.transpose(1, 2))
    assert torch.allclose(g[1], gram_matrix(f[1:2])[0])  # no mixing across the batch
    perm = torch.randperm(30, generator=gen)
    shuffled = f.reshape(3, 4, 30)[:, :, perm].reshape(3, 4, 5, 6)
    assert torch.allclose(gram_matrix(shuffled), g, atol=1e-6)  # Gram forgets where features are
    # normalised by C·H·W: same statistics on a twice-as-large map give the same Gram
    assert torch.allclose(gram_matrix(f.repeat(1, 1, 2, 1)), g, atol=1e-6)


def test_gram_matrix_computes_in_fp32():
    f = torch.full((1, 2, 64, 64), 200.0, dtype=torch.float16)  # fp16 products would overflow past 65504
    g = gram_matrix(f)
    assert g.dtype == torch.float32
    assert torch.allclose(g, torch.full((1, 2, 2), 200.0 * 200.0 / 2))


def test_content_loss_sum_and_mean():
    a = torch.zeros(2, 1, 2, 2)
    b = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 1, 2, 2)  # broadcast over the batch
    assert float(content_loss(a, b, "sum")) == pytest.approx(2 * (1 + 4 + 9 + 16))
    assert float(content_loss(a, b)) == pytest.approx(30 / 4)


def test_gram_loss_matches_gatys_layer_energy():
    gen = torch.Generator().manual_seed(1)
    n_l, h, w = 3, 4, 5
    m_l = h * w
    x = torch.randn(1, n_l, h, w, generator=gen)
    a = torch.randn(1, n_l, h, w, generator=gen)
    raw_g = x.reshape(n_l, m_l) @ x.reshape(n_l, m_l).T
    raw_a = a.reshape(n_l, m_l) @ a.reshape(n_l, m_l).T
    e_l = ((raw_g - raw_a) ** 2).sum() / (4 * n_l ** 2 * m_l ** 2)  # Gatys et al. 2016, eq. 4
    ours = 0.25 * gram_loss(gram_matrix(x), gram_matrix(a), reduction="sum")
    assert float(ours) == pytest.approx(float(e_l), rel=1e-5)
    assert float(gram_loss(gram_matrix(x), gram_matrix(a))) == pytest.approx(float(ours) * 4 / n_l ** 2, rel=1e-5)


def test_style_loss_weights_and_scale():
    gen = torch.Generator().manual_seed(2)
    feats = {"a": torch.randn(2, 3, 4, 4, generator=gen), "b": torch.randn(2, 5, 2, 2, generator=gen)}
    targets = {"a": gram_matrix(torch.randn(1, 3, 4, 4, generator=gen)),
               "b": gram_matrix(torch.randn(1, 5, 2, 2, generator=gen))}
    la = gram_loss(gram_matrix(feats["a"]), targets["a"])
    lb = gram_loss(gram_matrix(feats["b"]), targets["b"])
    assert float(style_loss(feats, targets)) == pytest.approx(float(la + lb), rel=1e-6)
    total = style_loss(feats, targets, {"a": 0.2, "b": 3.0}, scale=10.0)
    assert float(total) == pytest.approx(float(10 * (0.2 * la + 3.0 * lb)), rel=1e-6)
    only_a = style_loss(feats, {"a": targets["a"]})  # layers come from the targets
    assert float(only_a) == pytest.approx(float(la), rel=1e-6)
    assert float(style_loss(feats, {k: gram_matrix(v) for k, v in feats.items()})) == pytest.approx(0.0, abs=1e-10)
    with pytest.raises(ValueError):
        style_loss(feats, {})


def test_style_loss_gradient_reaches_features():
    f = torch.randn(1, 3, 4, 4, generator=torch.Generator().manual_seed(3), requires_grad=True)
    style_loss({"a": f}, {"a": torch.zeros(1, 3, 3)}).backward()
    assert f.grad is not None and float(f.grad.abs().sum()) > 0


def test_gram_gradient_equals_autograds_own():
    gen = torch.Generator().manual_seed(4)
    f = torch.randn(2, 5, 6, 7, generator=gen)
    weight = torch.randn(2, 5, 5, generator=gen)  # not symmetric: the general case

    def grad(gram):
        x = f.clone().requires_grad_(True)
        (gram(x) * weight).sum().backward()
        return x.grad

    def plain(x):
        m = x.reshape(2, 5, 42)
        return torch.bmm(m, m.transpose(1, 2)) / (5 * 42)

    assert torch.allclose(grad(gram_matrix), grad(plain), atol=1e-6)
    from fastst.losses import _Gram  # the product itself, in fp64 (gram_matrix computes in fp32)
    small = torch.randn(2, 3, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(_Gram.apply, (small,))


def test_gram_gradient_under_bf16_autocast_keeps_the_input_dtype():
    f = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(5), requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = gram_loss(gram_matrix(f * 2), torch.zeros(1, 4, 4))
    loss.backward()
    assert f.grad.dtype == torch.float32 and float(f.grad.abs().sum()) > 0


def test_gram_of_channels_last_features_has_the_same_value_and_gradient_layout():
    """The loss network hands out channels-last features: the Gram backward answers in their layout
    (so the ReLU backward meets matching strides), with the values of the NCHW computation."""
    gen = torch.Generator().manual_seed(6)
    f = torch.randn(2, 5, 6, 7, generator=gen, dtype=torch.float64)
    weight = torch.randn(2, 5, 5, generator=gen, dtype=torch.float64)
    results = {}
    for fmt in (torch.contiguous_format, torch.channels_last):
        x = f.clone(memory_format=fmt).requires_grad_(True)
        g = gram_matrix(x)
        (g * weight).sum().backward()
        results[fmt] = (g, x.grad)
    (g0, d0), (g1, d1) = results[torch.contiguous_format], results[torch.channels_last]
    assert torch.allclose(g0, g1, atol=1e-12) and torch.allclose(d0, d1, atol=1e-12)
    assert d1.is_contiguous(memory_format=torch.channels_last) and not d1.is_contiguous()


def test_gram_in_the_features_dtype_for_training():
    """fp32=False keeps bf16 features in bf16 (the trainer's choice): close to the fp32 Gram."""
    f = torch.randn(2, 8, 16, 16, generator=torch.Generator().manual_seed(7)).bfloat16()
    exact, fast = gram_matrix(f), gram_matrix(f, fp32=False)
    assert exact.dtype == torch.float32 and fast.dtype == torch.bfloat16
    assert 0 < float((fast.float() - exact).abs().max()) < 1e-2 * float(exact.abs().max())
    assert torch.equal(gram_matrix(f.float(), fp32=False), gram_matrix(f.float()))  # fp32 input: unchanged


def test_total_variation_hand_computed():
    img = torch.tensor([[0.0, 1.0], [3.0, 5.0]]).view(1, 1, 2, 2)
    # vertical |3-0| + |5-1| = 7 ; horizontal |1-0| + |5-3| = 3
    assert float(total_variation(img, "sum")) == pytest.approx(10.0)
    assert float(total_variation(img)) == pytest.approx(7 / 2 + 3 / 2)
    assert float(total_variation(torch.full((2, 3, 8, 8), 0.7))) == 0.0
    stripes = torch.zeros(1, 1, 4, 4)
    stripes[..., 1::2] = 1.0  # vertical stripes: only horizontal neighbours differ
    assert float(total_variation(stripes, "sum")) == pytest.approx(4 * 3)


def test_blended_grams_normalises_weights():
    a = {"relu1_1": torch.ones(1, 2, 2), "relu2_1": torch.zeros(1, 3, 3)}
    b = {"relu1_1": torch.full((1, 2, 2), 5.0), "relu2_1": torch.full((1, 3, 3), 4.0)}
    out = blended_grams([a, b], [1.0, 3.0])
    assert set(out) == {"relu1_1", "relu2_1"}
    assert torch.allclose(out["relu1_1"], torch.full((1, 2, 2), 0.25 * 1 + 0.75 * 5))
    assert torch.allclose(out["relu2_1"], torch.full((1, 3, 3), 3.0))
    same = blended_grams([a, b], [2.0, 6.0])  # only the ratio matters
    assert all(torch.allclose(same[k], out[k]) for k in out)
    assert torch.equal(blended_grams([a, b], [1.0, 0.0])["relu1_1"], a["relu1_1"])


@pytest.mark.parametrize("weights", [[1.0], [0.0, 0.0], [-1.0, 2.0], []])
def test_blended_grams_rejects_bad_weights(weights):
    a = {"x": torch.ones(1, 2, 2)}
    with pytest.raises(ValueError):
        blended_grams([a, a] if len(weights) != 0 else [], weights)


def test_blended_grams_rejects_mismatched_layers():
    with pytest.raises(ValueError):
        blended_grams([{"x": torch.ones(1, 2, 2)}, {"y": torch.ones(1, 2, 2)}], [1.0, 1.0])


def test_perceptual_terms_scale_each_samples_style_term():
    """Per-sample style weights (strength rows train at a lower one): ones give the batched term, and a
    sample's scale scales its share of the mean."""
    from fastst.lossnet import LossNetwork
    from fastst.objectives.perceptual import PerceptualObjective

    torch.manual_seed(0)
    obj = PerceptualObjective(["relu2_2"], ["relu1_2", "relu2_2"], 1.0, 1.0, 0.0)
    net = LossNetwork("vgg16-caffe", obj.layers)
    out, images = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    grams = {n: g.expand(2, *g.shape) for n, g in obj.style_targets(net, torch.rand(3, 32, 32)).items()}
    plain = obj.terms(net, out, images, grams)
    ones = obj.terms(net, out, images, grams, style_scale=torch.ones(2))
    torch.testing.assert_close(ones["style"], plain["style"], rtol=1e-4, atol=0)
    each = [float(obj.terms(net, out[i:i + 1], images[i:i + 1], {n: g[i:i + 1] for n, g in grams.items()})["style"])
            for i in range(2)]
    scaled = obj.terms(net, out, images, grams, style_scale=torch.tensor([0.1, 1.0]))
    assert float(scaled["style"]) == pytest.approx((0.1 * each[0] + each[1]) / 2, rel=1e-4)
