"""The stability sampler and losses: identity gives zero, larger perturbations cost more, the warp
moves pixels the way its matrix says, and distillation pins a model to its frozen copy."""
from __future__ import annotations

import copy

import torch

from conftest import synthetic_image
from fastst.modelfile import load_model
from fastst.pretrained import pretrained_path
from fastst.stability import (
    PerturbationRange,
    distillation_loss,
    identity_perturbation,
    perturb,
    sample_perturbation,
    stability_loss,
    stability_term,
    warp,
)
from fastst.transformer import style_vector


def _bundled():
    return load_model(pretrained_path()).net.eval()


def test_sampler_is_seeded_and_scales_with_the_range():
    a = sample_perturbation(3, 40, 56, generator=torch.Generator().manual_seed(5))
    b = sample_perturbation(3, 40, 56, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a.theta, b.theta) and torch.equal(a.noise, b.noise) and torch.equal(a.gain, b.gain)
    zero = sample_perturbation(3, 40, 56, PerturbationRange().scaled(0), torch.Generator().manual_seed(5))
    ident = identity_perturbation(3, 40, 56)
    assert torch.equal(zero.theta, ident.theta) and not zero.noise.any() and torch.equal(zero.gain, ident.gain)


def test_warp_shifts_by_whole_pixels_and_masks_what_left_the_frame():
    x = synthetic_image(32, 48).unsqueeze(0)
    theta = identity_perturbation(1, 32, 48).theta
    theta[0, 0, 2] = 2 * 3 / 48  # sample 3 px to the right
    theta[0, 1, 2] = -2 * 2 / 32  # and 2 px up
    warped, valid = warp(x, theta)
    torch.testing.assert_close(warped[..., 2:, :-3], x[..., :-2, 3:], atol=1e-5, rtol=0)
    assert valid[..., 2:, :-3].all() and not valid[..., :, -3:].any() and not valid[..., :2, :].any()


def test_stability_loss_is_zero_for_identity_and_grows_with_the_perturbation():
    net = _bundled()
    x = torch.stack([synthetic_image(64, 80, seed=s) for s in range(2)])
    w = style_vector(net.num_styles, 0, batch=2)
    with torch.no_grad():
        out = net(x, w)
        p = identity_perturbation(2, 64, 80)
        assert stability_loss(out, net(perturb(x, p), w), p).item() == 0.0
        losses = []
        for k in (0.25, 0.5, 1.0):
            p = sample_perturbation(2, 64, 80, PerturbationRange().scaled(k), torch.Generator().manual_seed(0))
            losses.append(stability_loss(out, net(perturb(x, p), w), p).item())
    assert 0 < losses[0] < losses[1] < losses[2], losses


def test_stability_loss_reaches_both_outputs_and_ignores_pixels_from_outside():
    out = torch.rand(1, 3, 24, 24, requires_grad=True)
    p = identity_perturbation(1, 24, 24)
    p.theta[0, 0, 2] = 2 * 4 / 24
    moved, _ = warp(out.detach(), p.theta)
    other = moved.clone()
    other[..., -4:] = 1 - other[..., -4:]  # garbage only where the source left the frame
    other.requires_grad_(True)
    loss = stability_loss(out, other, p)
    assert loss.item() < 1e-10
    (stability_loss(out, torch.zeros_like(other, requires_grad=True), p)).backward()
    assert out.grad is not None and out.grad.abs().sum() > 0


def test_distillation_pins_a_model_to_its_frozen_copy():
    net = _bundled().requires_grad_(True)
    teacher = copy.deepcopy(net).eval().requires_grad_(False)  # the teacher as distillation uses it
    assert not any(q.requires_grad for q in teacher.parameters())
    assert all(q.requires_grad for q in net.parameters())
    x = synthetic_image(32, 32).unsqueeze(0)
    w = style_vector(net.num_styles, 1)
    assert distillation_loss(net(x, w), teacher(x, w)).item() == 0.0
    with torch.no_grad():
        net.out.norm.shift[1] += 0.5
    assert distillation_loss(net(x, w), teacher(x, w)).item() > 1e-4


def test_stability_term_of_a_batch_is_seeded_and_trains_the_network():
    net = _bundled().requires_grad_(True)
    x = torch.stack([synthetic_image(48, 48, seed=s) for s in range(2)])
    w = style_vector(net.num_styles, 2, batch=2)
    out = net(x, w)
    a = stability_term(net, x, w, out, generator=torch.Generator().manual_seed(3))
    b = stability_term(net, x, w, out, generator=torch.Generator().manual_seed(3))
    assert a.item() == b.item() > 0
    a.backward()
    assert net.residual[0].a.conv.weight.grad.abs().sum() > 0
    assert net.out.norm.scale.grad[2].abs().sum() > 0 and net.out.norm.scale.grad[0].abs().sum() == 0
