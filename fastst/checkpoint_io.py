"""Checkpoints written atomically: each goes to a temporary file in its own folder, is flushed to disk
and renamed over the old one. Lightning's default writes under $TMPDIR and copies the file across, so a
full disk or a kill during the copy left a truncated `last.ckpt`; a rename within one folder either
happens whole or not at all. Non-finite weights are never written over a good checkpoint."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from .atomic import save_torch
from .errors import FaststError


def nonfinite_tensor(state: Any) -> str | None:
    """The name of the first tensor in a (nested) state dict holding NaN or infinity, else None."""
    if isinstance(state, dict):
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                    return str(key)
            elif isinstance(value, dict):
                found = nonfinite_tensor(value)
                if found is not None:
                    return f"{key}.{found}"
    return None


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint IO with atomic, same-folder writes (see the module docstring); a disk
    error becomes a FaststError naming the checkpoint."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | os.PathLike,
                        storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage_options")
        bad = nonfinite_tensor(checkpoint.get("state_dict", {}))
        if bad is not None:
            raise FaststError(f"not written: the weights hold NaN or infinity ({bad}); the earlier checkpoints "
                              "are kept", path)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:
            save_torch(checkpoint, path, "checkpoint")
        except FaststError as e:
            raise FaststError(f"{e}; the earlier checkpoints are kept") from None
