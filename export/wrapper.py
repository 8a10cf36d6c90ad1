"""A tracing- and export-friendly view of TransformerNet: the same layers and results, with the
shape-dependent Python branch of TransformerNet.forward removed, optional fp16 compute behind
float32 inputs/outputs, and an optional output scale (Core ML image outputs want 0-255)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fastst.transformer import TransformerNet


class ExportNet(nn.Module):
    """(image (N,3,H,W) float32 in [0,1], style (N,S) float32) -> stylized (N,3,H,W) float32 in [0, scale].

    `pad=True` always reflection-pads H and W up to a multiple of 4 (pads of 0 when already one)
    and crops back, so a dynamic-shape export has no data-dependent branch or size guard; `pad=False` needs
    multiple-of-4 inputs (torch.jit.trace cannot keep the crop size symbolic). Export scripts
    check their outputs against TransformerNet itself, so any drift from its forward is caught.
    `fused_norm=False` keeps each norm's per-style scale and shift as separate ops, for converters
    that need a constant instance-norm scale (Core ML). The output conv is exported as the plain
    9x9 conv (see `OutputConv`), whose weight stays a constant. Pass a copy of the network: its norms'
    tiled-inference state is cleared.
    """

    def __init__(self, net: TransformerNet, pad: bool = True, scale: float = 1.0,
                 dtype: torch.dtype = torch.float32, fused_norm: bool = True) -> None:
        super().__init__()
        for norm in net.norms():  # tiled-inference state must not leak into an export
            norm.shared_stats, norm.stats, norm.fused = None, None, fused_norm
        net.out.space_to_depth = False
        net.skip_closed = not bool(net.skip.detach().any())  # no identity row: leave the input skip out of the graph
        self.net = net
        self.pad = pad
        self.scale = float(scale)
        self.dtype = dtype

    def forward(self, image: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        net = self.net
        h, w = image.shape[-2], image.shape[-1]
        ph, pw = (-h) % 4, (-w) % 4
        x = image.to(self.dtype)
        if self.pad:
            x = F.pad(x, (0, pw, 0, ph), mode="reflect")
        x = net.body(x, style)
        if self.pad:  # crop by negative padding: slicing to :h makes torch.export fail on a size guard
            x = F.pad(x, (0, -pw, 0, -ph))
        x = x.float()
        return x * self.scale if self.scale != 1.0 else x
