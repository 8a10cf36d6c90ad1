"""Colour-preserving style transfer: keep the content's chroma, take the stylized luminance
(Gatys et al., "Preserving Color in Neural Artistic Style Transfer"). Used by infer and gatys."""
from __future__ import annotations

import torch
import torch.nn.functional as F

# ITU-R BT.601 full-range (JPEG) RGB <-> YCbCr on [0, 1] values
_RGB_TO_YCBCR = torch.tensor([[0.299, 0.587, 0.114],
                              [-0.168736, -0.331264, 0.5],
                              [0.5, -0.418688, -0.081312]])
_YCBCR_TO_RGB = torch.linalg.inv(_RGB_TO_YCBCR)
_OFFSET = torch.tensor([0.0, 0.5, 0.5])


def rgb_to_ycbcr(rgb: torch.Tensor) -> torch.Tensor:
    """(…, 3, H, W) RGB in [0, 1] -> YCbCr with Cb, Cr centred on 0.5."""
    m = _RGB_TO_YCBCR.to(rgb)
    return torch.einsum("ij,...jhw->...ihw", m, rgb) + _OFFSET.to(rgb)[:, None, None]


def ycbcr_to_rgb(ycc: torch.Tensor) -> torch.Tensor:
    """Inverse of rgb_to_ycbcr (not clamped)."""
    m = _YCBCR_TO_RGB.to(ycc)
    return torch.einsum("ij,...jhw->...ihw", m, ycc - _OFFSET.to(ycc)[:, None, None])


def preserve_colors(content: torch.Tensor, stylized: torch.Tensor) -> torch.Tensor:
    """Luminance of `stylized` with the chroma of `content`, clamped to [0, 1]. If the sizes differ
    (a network may round the output size), the content's chroma is resized to the stylized image."""
    y = rgb_to_ycbcr(stylized)[..., :1, :, :]
    cbcr = rgb_to_ycbcr(content)[..., 1:, :, :]
    if cbcr.shape[-2:] != y.shape[-2:]:
        flat = cbcr.reshape(-1, 2, *cbcr.shape[-2:])
        flat = F.interpolate(flat, size=y.shape[-2:], mode="bilinear", align_corners=False)
        cbcr = flat.reshape(*cbcr.shape[:-2], *y.shape[-2:])
    return ycbcr_to_rgb(torch.cat([y, cbcr], dim=-3)).clamp(0, 1)
