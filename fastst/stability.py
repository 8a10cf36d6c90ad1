"""Stability training without optical flow: a seeded sampler of the small changes consecutive video
frames bring (shift, rotation, scale, noise, brightness), the stability loss that asks the network to
commute with them, and the output distillation term that keeps a fine-tuned model's look.

A feed-forward stylizer f redraws its texture from scratch for every frame, so a change of a pixel
or two in the input moves the strokes and the video flickers (Gupta et al., "Characterizing and
Improving Stability in Neural Style Transfer", ICCV 2017). Wang et al. ("Consistent Video Style
Transfer via Compound Regularization", AAAI 2020) train it away on still photos: for a random small
warp W and noise Δ, penalise ‖f(W(x) + Δ) − W(f(x))‖², no video or optical flow needed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class PerturbationRange:
    """The largest perturbation drawn, each parameter uniform in [-max, max] (brightness: gain 1 ± max).
    The defaults are of the order of what one frame step of ordinary footage does."""

    shift: float = 4.0  # pixels, each axis
    rotation: float = 1.0  # degrees
    scale: float = 0.02  # relative zoom, log-uniform in [-scale, scale]
    noise: float = 0.02  # standard deviation of Gaussian noise, on RGB in [0, 1]
    brightness: float = 0.05  # relative gain

    def scaled(self, factor: float) -> PerturbationRange:
        """Every magnitude multiplied by `factor` (0: the identity)."""
        return replace(self, **{k: factor * v for k, v in self.__dict__.items()})


@dataclass
class Perturbation:
    """One drawn perturbation per image: `theta` (N, 2, 3) is the affine map from output to input
    coordinates in grid_sample's normalised units, `noise` (N, 3, H, W) and `gain` (N, 1, 1, 1) the
    photometric part applied to the warped input only."""

    theta: torch.Tensor
    noise: torch.Tensor
    gain: torch.Tensor

    def to(self, device: torch.device | str) -> Perturbation:
        return Perturbation(self.theta.to(device), self.noise.to(device), self.gain.to(device))


def _identity_theta(n: int) -> torch.Tensor:
    return torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]).expand(n, 2, 3).clone()


def sample_perturbation(n: int, height: int, width: int, ranges: PerturbationRange = PerturbationRange(),
                        generator: torch.Generator | None = None) -> Perturbation:
    """Draw `n` perturbations for (H, W) images, on the CPU from `generator` (reproducible).

    The geometry is built in pixel units about the image centre and converted to grid_sample's
    normalised coordinates (x_n = 2u / W), so a rotation stays a rotation on non-square images.
    The same generator state with `ranges.scaled(k)` draws the same directions, k times as large.
    """
    u = torch.rand(n, 5, generator=generator) * 2 - 1  # shift x, shift y, angle, log-scale, gain
    noise = torch.randn(n, 3, height, width, generator=generator) * ranges.noise
    angle = u[:, 2] * math.radians(ranges.rotation)
    zoom = torch.exp(u[:, 3] * ranges.scale)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    sx, sy = width / 2, height / 2  # pixel units per normalised unit
    theta = torch.stack([
        torch.stack([cos, -sin * sy / sx, 2 * u[:, 0] * ranges.shift / width], 1),
        torch.stack([sin * sx / sy, cos, 2 * u[:, 1] * ranges.shift / height], 1),
    ], 1)
    gain = (1 + u[:, 4] * ranges.brightness).view(n, 1, 1, 1)
    return Perturbation(theta, noise, gain)


def identity_perturbation(n: int, height: int, width: int) -> Perturbation:
    """The perturbation that changes nothing (zero noise, gain 1, identity warp)."""
    return Perturbation(_identity_theta(n), torch.zeros(n, 3, height, width), torch.ones(n, 1, 1, 1))


def warp(images: torch.Tensor, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """W(images) by bilinear sampling at theta·(output coordinates), and the (N, 1, H, W) mask of the
    pixels whose source lies inside the frame. Outside, the edge pixel is repeated (a camera would
    see new scenery there, which is why the loss ignores those pixels). An identity theta returns the
    images themselves, exactly."""
    theta = theta.to(device=images.device, dtype=torch.float32)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    warped = F.grid_sample(images.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)
    ones = torch.ones_like(images[:, :1], dtype=torch.float32)
    valid = F.grid_sample(ones, grid, mode="bilinear", padding_mode="zeros", align_corners=False) > 1 - 1e-4
    same = (theta == _identity_theta(len(theta)).to(theta)).flatten(1).all(1).view(-1, 1, 1, 1)
    warped = torch.where(same, images.float(), warped).to(images.dtype)
    return warped, valid | same


def perturb(images: torch.Tensor, p: Perturbation) -> torch.Tensor:
    """The perturbed input clamp(gain · W(x) + noise, 0, 1): what the next frame might look like."""
    warped, _ = warp(images, p.theta)
    return (warped * p.gain.to(warped) + p.noise.to(warped)).clamp(0, 1)


def stability_loss(out: torch.Tensor, out_perturbed: torch.Tensor, p: Perturbation) -> torch.Tensor:
    """Mean over in-frame pixels of (f(perturb(x)) − W(f(x)))², given `out` = f(x) and
    `out_perturbed` = f(perturb(x, p)): zero when f commutes with the warp and ignores the noise
    and brightness change, i.e. when the painting moves with the scene instead of being redrawn.
    Gradients flow into both outputs."""
    target, valid = warp(out, p.theta)
    diff = (out_perturbed.float() - target.float()) ** 2
    mask = valid.to(diff.dtype).expand_as(diff)
    return (diff * mask).sum() / mask.sum().clamp_min(1.0)


def stability_term(net: nn.Module, images: torch.Tensor, weights: torch.Tensor, out: torch.Tensor,
                   ranges: PerturbationRange = PerturbationRange(),
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """The stability loss of one training batch: draws a perturbation per photo, runs the network on
    the perturbed photos with the same style weights and compares with `out` = net(images, weights).
    One extra forward and backward of the transformer, no loss network."""
    n, _, h, w = images.shape
    p = sample_perturbation(n, h, w, ranges, generator).to(images.device)
    return stability_loss(out, net(perturb(images, p), weights), p)


def distillation_loss(out: torch.Tensor, teacher_out: torch.Tensor) -> torch.Tensor:
    """mean((f(x) − f₀(x))²) for a frozen copy f₀ of the starting model run with the same style
    weights: "keep the look" while another term (stability, a new identity row) moves the weights.
    Output-space distillation in the sense of Hinton et al. 2015, on pixels instead of logits."""
    return F.mse_loss(out.float(), teacher_out.detach().float())

