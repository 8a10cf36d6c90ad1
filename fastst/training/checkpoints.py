"""Lightning checkpoints written by `fastst train`: reading them, and converting one into a model file."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ..modelcheck import read_torch_file, validate_checkpoint
from ..modelfile import StyleInfo, save_model
from ..transformer import DEFAULT_WIDTH, TransformerNet


def read_checkpoint(checkpoint: str | os.PathLike) -> dict[str, Any]:
    """A Lightning checkpoint written by `fastst train`, loaded on the CPU; bad files raise FaststError."""
    blob = read_torch_file(checkpoint, "checkpoint")
    validate_checkpoint(blob, checkpoint)
    return blob


def checkpoint_width(blob: dict[str, Any]) -> int:
    """The network width of a checkpoint read by `read_checkpoint` (32 where the checkpoint names none)."""
    return int(blob["fastst"]["config"].get("width") or DEFAULT_WIDTH)


def checkpoint_to_model(checkpoint: str | os.PathLike, out: str | os.PathLike, half: bool = False) -> Path:
    """Convert a Lightning checkpoint written by `fastst train` into a .fst model file."""
    blob = read_checkpoint(checkpoint)
    meta = blob["fastst"]
    styles = [StyleInfo.from_dict(s) for s in meta["styles"]]
    net = TransformerNet(num_styles=len(styles), width=checkpoint_width(blob))
    state = {k[4:]: v for k, v in blob["state_dict"].items() if k.startswith("net.")}
    state.setdefault("skip", torch.zeros(len(styles), 3))  # checkpoints from before the input skip: closed
    net.load_state_dict(state)
    earlier = int((meta["config"].get("init") or {}).get("steps_done", 0))  # steps of the model the run started from
    config = dict(meta["config"], steps_done=int(blob.get("global_step", 0)) + earlier)
    return save_model(out, net, styles, config, half=half)
