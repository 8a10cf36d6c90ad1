"""Models of other projects as fastst model files. pytorch/examples' fast_neural_style saves the same
network with one style, a plain output conv (no norm, clamped to 0-255) and 0-255 inputs; its state
dict maps onto TransformerNet(output="clamp") exactly, so its models run, tile and export here."""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from .errors import FaststError, first_line
from .modelcheck import MAX_BLOCKS, MAX_WIDTH, check_tensors, checked_shapes, read_torch_file
from .modelfile import StyleInfo, save_model
from .transformer import TransformerNet

_RUNNING_STATS = re.compile(r"running_(mean|var)$|num_batches_tracked$")  # old saves carry these; unused
_PYTORCH_EXAMPLES_KEYS = ("conv1.conv2d.weight", "in1.weight", "res1.conv1.conv2d.weight", "deconv3.conv2d.weight")


def is_pytorch_examples_state(state: Any) -> bool:
    """Whether `state` is a state dict saved by pytorch/examples' fast_neural_style (`saved_models/*.pth`)."""
    return isinstance(state, Mapping) and all(k in state for k in _PYTORCH_EXAMPLES_KEYS)


def from_pytorch_examples(state: Mapping[str, torch.Tensor]) -> TransformerNet:
    """A one-style TransformerNet computing what the fast_neural_style network computes: for x in [0, 1],
    net(x) = clamp(theirs(255·x), 0, 255) / 255 (on sides that are multiples of 4, where both keep the size).
    Its first conv takes the ×255 of the input and its output conv the ÷255 of the output."""
    state = {k: v.float() for k, v in state.items() if not _RUNNING_STATS.search(k)}
    width = int(state["conv1.conv2d.weight"].shape[0])
    blocks = len({k.split(".")[0] for k in state if re.fullmatch(r"res\d+\..*", k)})
    if not 1 <= width <= MAX_WIDTH or blocks > MAX_BLOCKS:
        raise FaststError(f"a network of width {width} with {blocks} residual blocks is beyond what fastst builds "
                          f"(width up to {MAX_WIDTH}, up to {MAX_BLOCKS} blocks)")
    checked_shapes(1, blocks, width, "clamp", None)  # and not more weights in all than a model may have
    net = TransformerNet(num_styles=1, residual_blocks=blocks, width=width, output="clamp")
    layers = ([(net.down[i], f"conv{i + 1}", f"in{i + 1}") for i in range(3)]
              + [(getattr(net.residual[i], part), f"res{i + 1}.conv{j}", f"res{i + 1}.in{j}")
                 for i in range(blocks) for j, part in ((1, "a"), (2, "b"))]
              + [(net.up[0], "deconv1", "in4"), (net.up[1], "deconv2", "in5")])
    try:
        with torch.no_grad():
            for layer, conv, norm in layers:
                layer.conv.weight.copy_(state[f"{conv}.conv2d.weight"])
                layer.conv.bias.copy_(state[f"{conv}.conv2d.bias"])
                layer.norm.scale[0].copy_(state[f"{norm}.weight"])
                layer.norm.shift[0].copy_(state[f"{norm}.bias"])
            net.down[0].conv.weight.mul_(255)  # their input is 0-255
            net.out.conv.weight.copy_(state["deconv3.conv2d.weight"] / 255)  # and so is their output
            net.out.conv.bias.copy_(state["deconv3.conv2d.bias"] / 255)
    except (KeyError, RuntimeError) as e:
        raise FaststError(f"not the fast_neural_style network these weights should fit ({first_line(e, 120)})") from None
    return net.eval()


def import_model(path: str | os.PathLike, out: str | os.PathLike, style_name: str | None = None,
                 half: bool = False) -> Path:
    """Convert a pytorch/examples fast_neural_style model (`.pth`, e.g. saved_models/mosaic.pth) into
    a fastst model file with one style, named `style_name` (default: the file's stem)."""
    path = Path(path)
    state = read_torch_file(path, "PyTorch file")
    if not is_pytorch_examples_state(state):
        raise FaststError("not a fast_neural_style model (pytorch/examples) nor a fastst checkpoint", path)
    check_tensors({k: v for k, v in state.items() if not _RUNNING_STATS.search(str(k))}, None, path)
    try:
        net = from_pytorch_examples(state)
    except FaststError as e:
        raise FaststError(str(e), path) from None
    name = style_name or path.stem
    config = {"imported_from": "pytorch/examples fast_neural_style", "source_file": path.name}
    return save_model(out, net, [StyleInfo(name)], config, half=half)
