"""The Turi Create style-transfer network: 3 downsampling convs, 5 residual blocks, 2 upsampling
convs and an output conv, each followed by instance norm with per-style scale and shift.
A plain nn.Module: training, inference and export all use it directly."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .fastconv import channels_last_eager, space_to_depth_conv, upsample_conv


class ConditionalInstanceNorm(nn.Module):
    """Instance norm whose scale and shift are rows of a per-style table, mixed by style weights.

    `shared_stats` lets tiled inference normalise every tile with whole-image statistics:
    set it to "record" to store (mean, var) of the next forward, to "use" to apply stored ones.
    `fused` (default) applies scale and shift inside the instance-norm kernel; converters that need
    a constant norm scale (Core ML) set it to False to get the same result as separate ops.
    """

    def __init__(self, channels: int, num_styles: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.scale = nn.Parameter(torch.ones(num_styles, channels))
        self.shift = nn.Parameter(torch.zeros(num_styles, channels))
        self.shared_stats: str | None = None
        self.stats: tuple[torch.Tensor, torch.Tensor] | None = None
        self.fused = True

    def forward(self, x: torch.Tensor, style_weights: torch.Tensor) -> torch.Tensor:
        w = style_weights.to(self.scale.dtype)
        if self.shared_stats is None and self.fused and x.shape[1] >= 8 and channels_last_eager(x):
            # instance_norm would first copy a channels-last x into the plain layout; batch norm in
            # training mode over one sample is instance norm, and its CPU kernel keeps the layout
            # (128 channels at 128², bf16: 1.1 ms against 4 ms for the fold below; 32 at 512²: 4 ms
            # against 18). The 3-channel output norm is faster folded (0.5 ms against 3): its
            # output, plain, goes straight to the sigmoid and out.
            gamma, beta = (w @ self.scale).to(x.dtype), (w @ self.shift).to(x.dtype)
            planes = [F.batch_norm(x[i:i + 1], None, None, gamma[i], beta[i], training=True, eps=self.eps)
                      for i in range(x.shape[0])]
            return planes[0] if len(planes) == 1 else torch.cat(planes)
        if self.shared_stats is None and self.fused:
            # Instance norm treats every (sample, channel) plane alike, so folding the batch into the
            # channels lets each sample have its own scale and shift inside one fused kernel (and one
            # ONNX InstanceNormalization): 15% faster than normalising, then scaling and shifting.
            gamma = (w @ self.scale).to(x.dtype).flatten()
            beta = (w @ self.shift).to(x.dtype).flatten()
            y = F.instance_norm(x.flatten(0, 1).unsqueeze(0), weight=gamma, bias=beta, eps=self.eps)
            return y.view_as(x)
        gamma = (w @ self.scale).to(x.dtype)[:, :, None, None]
        beta = (w @ self.shift).to(x.dtype)[:, :, None, None]
        if self.shared_stats is None:
            return F.instance_norm(x, eps=self.eps) * gamma + beta
        if self.shared_stats == "record":
            xf = x.float()
            self.stats = (xf.mean(dim=(2, 3), keepdim=True), xf.var(dim=(2, 3), keepdim=True, unbiased=False))
        mean, var = self.stats  # type: ignore[misc]
        return ((x - mean.to(x.dtype)) * torch.rsqrt(var + self.eps).to(x.dtype)) * gamma + beta


class ConvNormAct(nn.Module):
    """Reflection-padded conv -> conditional instance norm -> optional ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, num_styles: int, relu: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2, padding_mode="reflect")
        self.norm = ConditionalInstanceNorm(cout, num_styles)
        self.relu = relu

    def forward(self, x: torch.Tensor, style_weights: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.convolve(x), style_weights)
        return F.relu(x) if self.relu else x

    def convolve(self, x: torch.Tensor) -> torch.Tensor:
        """The layer's conv; subclasses compute the same values another way."""
        return self.conv(x)


class ResidualBlock(nn.Module):
    """Two 3x3 conv-norm layers with an identity skip."""

    def __init__(self, channels: int, num_styles: int) -> None:
        super().__init__()
        self.a = ConvNormAct(channels, channels, 3, 1, num_styles)
        self.b = ConvNormAct(channels, channels, 3, 1, num_styles, relu=False)

    def forward(self, x: torch.Tensor, style_weights: torch.Tensor) -> torch.Tensor:
        return x + self.b(self.a(x, style_weights), style_weights)


class UpsampleConv(ConvNormAct):
    """Nearest-neighbour x2 upsampling, then conv-norm-ReLU (avoids transposed-conv checkerboards),
    computed without the upsampled copy by `upsample_conv`."""

    def convolve(self, x: torch.Tensor) -> torch.Tensor:
        return upsample_conv(x, self.conv.weight, self.conv.bias)


class OutputConv(ConvNormAct):
    """The 9x9 output conv-norm, its conv computed by `space_to_depth_conv` (3 output channels
    leave a direct conv's vector lanes mostly idle). Exporters set `space_to_depth = False`:
    the plain conv keeps a constant weight that converters fold and accelerators expect."""

    space_to_depth = True

    def convolve(self, x: torch.Tensor) -> torch.Tensor:
        if not self.space_to_depth:
            return self.conv(x)
        return space_to_depth_conv(x, self.conv.weight, self.conv.bias, self.conv.kernel_size[0])


DEFAULT_WIDTH = 32  # channels of the first conv in Johnson et al.'s and Turi Create's network
OUTPUTS = ("sigmoid", "clamp")  # the output head: fastst's norm + sigmoid, or pytorch/examples' clamped conv


class TransformerNet(nn.Module):
    """image (N,3,H,W) in [0,1], style_weights (N,num_styles) -> stylized image in [0,1], same size.

    One-hot style weights select a style, fractional ones blend. Any H, W: the input is
    reflection-padded to a multiple of 4 and the output cropped back. `width` is the first conv's
    channels; the next two and the residual blocks have 2× and 4× as many. `output` "sigmoid" (fastst's
    models) normalises the output conv and squashes it; "clamp" clips the output conv's values, with no
    norm, as pytorch/examples' fast_neural_style does (its models import into this network exactly).
    """

    def __init__(self, num_styles: int = 1, residual_blocks: int = 5, width: int = DEFAULT_WIDTH,
                 output: str = "sigmoid") -> None:
        super().__init__()
        if num_styles < 1:
            raise ValueError("num_styles must be at least 1")
        if width < 1:
            raise ValueError("width must be at least 1")
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {', '.join(OUTPUTS)}")
        self.num_styles, self.width, self.output = num_styles, width, output
        w = width
        self.down = nn.ModuleList([
            ConvNormAct(3, w, 9, 1, num_styles),
            ConvNormAct(w, 2 * w, 3, 2, num_styles),
            ConvNormAct(2 * w, 4 * w, 3, 2, num_styles),
        ])
        self.residual = nn.ModuleList([ResidualBlock(4 * w, num_styles) for _ in range(residual_blocks)])
        self.up = nn.ModuleList([
            UpsampleConv(4 * w, 2 * w, 3, 1, num_styles),
            UpsampleConv(2 * w, w, 3, 1, num_styles),
        ])
        self.out = OutputConv(w, 3, 9, 1, num_styles, relu=False)
        # Per-row gain of a path from the input straight to the output's logits: zero for style rows, so
        # they compute exactly what they did without it; an identity row opens it to reproduce the photo,
        # which the output's instance norm alone cannot (it fixes every channel's mean and spread).
        self.skip = nn.Parameter(torch.zeros(num_styles, 3))
        self.skip_closed = False  # exporters set it where every gain is 0: the graph then has no skip path
        if output == "clamp":
            self.out.norm = None  # type: ignore[assignment]

    def forward(self, image: torch.Tensor, style_weights: torch.Tensor) -> torch.Tensor:
        h, w = image.shape[-2:]
        ph, pw = (-h) % 4, (-w) % 4
        x = F.pad(image, (0, pw, 0, ph), mode="reflect") if (ph or pw) else image
        x = self.body(x, style_weights)
        return x[..., :h, :w] if (ph or pw) else x

    def body(self, x: torch.Tensor, style_weights: torch.Tensor) -> torch.Tensor:
        """The layers on an input whose sides are multiples of 4 (the exporters pad and crop their own way)."""
        image = x
        for layer in self.down:
            x = layer(x, style_weights)
        for block in self.residual:
            x = block(x, style_weights)
        for layer in self.up:
            x = layer(x, style_weights)
        if self.output == "clamp":
            return self.out.convolve(x).clamp(0, 1)
        z = self.out(x, style_weights)
        if self.output == "sigmoid" and not self.skip_closed:
            gain = (style_weights.to(self.skip.dtype) @ self.skip)[:, :, None, None]
            z = z + (gain.float() * logit(image.float())).to(z.dtype)  # fp32: 1 − ε rounds to 1 in bf16
        return torch.sigmoid(z)

    def norms(self) -> list[ConditionalInstanceNorm]:
        """Every conditional instance norm, in forward order."""
        return [m for m in self.modules() if isinstance(m, ConditionalInstanceNorm)]


LOGIT_EPS = 1e-3  # keeps the input's logits finite (±6.9): a zero skip gain then adds exactly zero


def logit(p: torch.Tensor) -> torch.Tensor:
    """log(p / (1 − p)) of an image clamped to [ε, 1 − ε], written with logs that every exporter knows."""
    p = p.clamp(LOGIT_EPS, 1 - LOGIT_EPS)
    return torch.log(p) - torch.log1p(-p)


def style_vector(num_styles: int, style: int | torch.Tensor | list[float] | None = None,
                 batch: int = 1, signed: bool = False) -> torch.Tensor:
    """Build an (batch, num_styles) weight matrix from a style index, a weight list or None (style 0).
    Weight lists are normalised to sum to 1; `signed` admits negative entries (a strength above 1
    extrapolates away from the identity row, fastst.controls), the sum must still be positive."""
    if style is None:
        style = 0
    if isinstance(style, int):
        if not 0 <= style < num_styles:
            raise ValueError(f"style index {style} out of range (model has {num_styles} styles)")
        w = torch.zeros(num_styles)
        w[style] = 1.0
    else:
        w = torch.as_tensor(style, dtype=torch.float32).flatten()
        if w.numel() != num_styles:
            raise ValueError(f"expected {num_styles} style weights, got {w.numel()}")
        if not torch.isfinite(w).all() or (not signed and (w < 0).any()) or w.sum() <= 0:
            raise ValueError("style weights must be finite, " + ("" if signed else "non-negative ") + "with a positive sum")
        w = w / w.sum()
    return w.unsqueeze(0).expand(batch, num_styles).contiguous()
