"""The Turi Create style-transfer network: 3 downsampling convs, 5 residual blocks, 2 upsampling
convs and an output conv, each followed by instance norm with per-style scale and shift.
A plain nn.Module: training, inference and export all use it directly."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


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


def _merge_taps(w: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The 3 taps of a kernel along `dim` as seen by the even and odd rows of a x2 nearest upsampling."""
    t0, t1, t2 = w.unbind(dim)
    return torch.stack([t0, t1 + t2], dim), torch.stack([t0 + t1, t2], dim)


def channels_last_eager(x: torch.Tensor) -> bool:
    """True for a 4-D CPU tensor stored channels-last (NHWC), outside tracing, export and compilation:
    the CPU inference layout, where the layers take copy-free paths. Plain (NCHW) tensors (training,
    the exporters), other devices and compiled graphs keep the plain formulations."""
    return (x.device.type == "cpu" and x.dim() == 4 and not x.is_contiguous()
            and x.is_contiguous(memory_format=torch.channels_last)
            and not torch.jit.is_tracing() and not torch.compiler.is_compiling())


def upsample_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """conv3x3(reflection_pad(nearest_upsample_x2(x))), the same values computed on x itself.

    Output pixel (2i+a, 2j+b) sees only x's rows i-1+a..i+a and columns j-1+b..j+b, so each of the four
    phases (a, b) is a 2x2 conv of x with summed taps; reflecting the upsampled image equals
    replicating x's edge. One conv gives all four phases and pixel_shuffle interleaves them:
    2.25x fewer multiply-adds than convolving the upsampled image, and no 4x-sized copy of it.
    """
    kernels = [k for rows in _merge_taps(weight, 2) for k in _merge_taps(rows, 3)]  # phases 00, 01, 10, 11
    y = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), torch.cat(kernels, 0),
                 None if bias is None else bias.repeat(4))
    if channels_last_eager(y):
        return _interleave_phases(y)
    keep = (slice(0, -1), slice(1, None))  # phase 0 drops the last row/column, phase 1 the first (static for tracers)
    phases = [part[:, :, keep[a], keep[b]] for part, (a, b) in zip(y.chunk(4, dim=1), ((0, 0), (0, 1), (1, 0), (1, 1)))]
    return F.pixel_shuffle(torch.stack(phases, 2).flatten(1, 2), 2)


def _interleave_phases(y: torch.Tensor) -> torch.Tensor:
    """`upsample_conv`'s last step for a channels-last y: each phase written straight into its rows
    and columns of a channels-last output, one copy instead of stack + pixel_shuffle's two."""
    n, c4, h1, w1 = y.shape
    c, h, w = c4 // 4, h1 - 1, w1 - 1
    out = torch.empty((n, c, 2 * h, 2 * w), dtype=y.dtype, device=y.device, memory_format=torch.channels_last)
    for k, (a, b) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
        out[:, :, a::2, b::2] = y[:, k * c:(k + 1) * c, a:a + h, b:b + w]
    return out


class OutputConv(ConvNormAct):
    """The 9x9 output conv-norm, its conv computed by `space_to_depth_conv` (3 output channels
    leave a direct conv's vector lanes mostly idle). Exporters set `space_to_depth = False`:
    the plain conv keeps a constant weight that converters fold and accelerators expect."""

    space_to_depth = True

    def convolve(self, x: torch.Tensor) -> torch.Tensor:
        if not self.space_to_depth:
            return self.conv(x)
        return space_to_depth_conv(x, self.conv.weight, self.conv.bias, self.conv.kernel_size[0])


def space_to_depth_kernel(weight: torch.Tensor, k: int, r: int = 2) -> torch.Tensor:
    """(co, ci, k, k) -> (co·r², ci·r², K, K), K = ceil((k+r-1)/r): the kernel that maps
    pixel_unshuffle(x, r) to pixel_unshuffle(conv(x)) for a valid, stride-1 conv. Output phase
    (a, b) sees the kernel shifted by (a, b) inside an rK-sized window, unshuffled like the input."""
    n = r * (-(-(k + r - 1) // r))
    phases = [F.pixel_unshuffle(F.pad(weight, (b, n - k - b, a, n - k - a)), r) for a in range(r) for b in range(r)]
    return torch.stack(phases, 1).flatten(0, 1)


def space_to_depth_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, k: int, r: int = 2) -> torch.Tensor:
    """conv(reflection_pad(x), weight) for an odd square kernel, computed on pixel_unshuffle(x, r):
    r² times the channels on each side, the same multiply-adds up to zero taps. For the 32->3
    output conv this is 1.3x (fp32) to 1.7x (bf16) faster on a CPU. Even H and W only; `k` is the
    kernel size, passed as a Python int so that tracers see constants."""
    p = k // 2
    x = F.pad(x, (p, p, p, p), mode="reflect")
    kernel = space_to_depth_kernel(weight, k, r)
    if channels_last_eager(x):  # phase-major channels: the (un)shuffles copy whole pixel rows
        co, ci = weight.shape[:2]
        kernel = kernel.unflatten(1, (ci, r * r)).transpose(1, 2).flatten(1, 2)
        kernel = kernel.unflatten(0, (co, r * r)).transpose(0, 1).flatten(0, 1)
        y = F.conv2d(_unshuffle_nhwc(x, r), kernel, None if bias is None else bias.repeat(r * r))
        return _shuffle_nhwc(y, r)
    y = F.conv2d(F.pixel_unshuffle(x, r), kernel, None if bias is None else bias.repeat_interleave(r * r))
    return F.pixel_shuffle(y, r)


def _unshuffle_nhwc(x: torch.Tensor, r: int) -> torch.Tensor:
    """pixel_unshuffle of a channels-last x with channel order (row phase, column phase, channel):
    each output pixel gathers r runs of r·C contiguous values (pixel_unshuffle's order, channel
    first, would gather single values). Returns a channels-last tensor."""
    n, c, h, w = x.shape
    y = x.permute(0, 2, 3, 1).reshape(n, h // r, r, w // r, r * c).transpose(2, 3)
    return y.reshape(n, h // r, w // r, r * r * c).permute(0, 3, 1, 2)


def _shuffle_nhwc(y: torch.Tensor, r: int) -> torch.Tensor:
    """The inverse of `_unshuffle_nhwc`: a channels-last (N, r²·C, h, w) in phase-major channel order
    to a channels-last (N, C, r·h, r·w)."""
    n, c, h, w = y.shape
    x = y.permute(0, 2, 3, 1).reshape(n, h, w, r, c // r).transpose(2, 3)
    return x.reshape(n, h * r, w * r, c // (r * r)).permute(0, 3, 1, 2)


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
