"""Training data: any folder of images (recursive) as random-resized crops, each sample paired
with a style, served in a seeded order that a resumed run continues exactly."""
from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler
from torchvision.transforms.v2 import functional as F

from .errors import FaststError
from .images import MIN_SIDE, find_images, load_image, load_pil, pil_to_tensor, resize_long_side
from .training.config import DEFAULT_CROP_SCALE

log = logging.getLogger(__name__)
HEADER_CHECK_LIMIT = 20000  # folders up to this size are header-checked up front; larger ones lazily


def readable_images(folder: str | os.PathLike, name: str = "data") -> tuple[list[Path], int]:
    """Image files under `folder` whose headers parse, and how many did not; errors call the folder `name`."""
    folder = Path(folder)
    if not folder.exists():
        raise FaststError(f"no such data folder ('{name}')", folder)
    if not folder.is_dir():
        raise FaststError(f"not a folder ('{name}' takes a folder of images)", folder)
    files = find_images(folder)
    if not files:
        raise FaststError("no images found (searched recursively for .jpg, .png, .webp, .bmp …)", folder)
    if len(files) > HEADER_CHECK_LIMIT:
        return files, 0
    good, bad = [], 0
    for f in files:
        try:
            with Image.open(f) as im:
                im.verify()
            good.append(f)
        except Exception:  # noqa: BLE001 - anything unreadable is skipped and counted
            bad += 1
    if not good:
        raise FaststError(f"none of the {len(files)} image files could be read", folder)
    if bad:
        log.warning("%s: skipped %d unreadable image file(s) of %d", folder, bad, len(files))
    return good, bad


def scorable_photos(files: list[Path], size: int, folder: Path) -> list[Path]:
    """The photos that keep at least MIN_SIDE px a side when their long side is resized to `size` (the
    network cannot pad thinner ones); the others are skipped with a warning, all of them an error."""
    keep = []
    for f in files:
        with Image.open(f) as im:
            w, h = im.size
        if round(min(w, h) * size / max(w, h)) >= MIN_SIDE:
            keep.append(f)
    if not keep:
        raise FaststError(f"no photo here keeps {MIN_SIDE} px a side at a long side of {size} px", folder)
    if len(keep) < len(files):
        log.warning("%s: skipped %d photo(s) too thin to score at %d px (under %d px a side)", folder,
                    len(files) - len(keep), size, MIN_SIDE)
    return keep


class StyledCrops(Dataset):
    """Sample id k = file + N·position -> (random-resized crop of that file seeded by k, style position mod S).

    Everything depends only on (seed, k), so a resumed run continues with the same crops and styles,
    and styles cycle evenly through every batch.
    """

    def __init__(self, files: list[Path], image_size: int, num_styles: int, seed: int = 0,
                 scale: tuple[float, float] = DEFAULT_CROP_SCALE, ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> None:
        self.files, self.image_size, self.num_styles, self.seed = files, image_size, num_styles, seed
        self.scale, self.log_ratio = scale, (math.log(ratio[0]), math.log(ratio[1]))
        self.failures = 0

    def __len__(self) -> int:
        return len(self.files)

    def load(self, file_index: int) -> torch.Tensor:
        """The file as a tensor; an unreadable file is skipped (counted, warned once) for the next one."""
        n = len(self.files)
        for attempt in range(n):
            path = self.files[(file_index + attempt) % n]
            try:
                return load_image(path)  # at least MIN_SIDE px a side: a 1×1 file is no photo to learn from
            except FaststError as e:
                self.failures += 1
                if self.failures == 1:
                    log.warning("%s; skipped (further unusable photos are skipped silently)", e)
        raise FaststError("no readable images left", self.files[0].parent)

    def crop(self, image: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """Random-resized crop (area fraction `scale`, aspect `ratio`) and random horizontal flip."""
        _, h, w = image.shape
        area = h * w
        for _ in range(10):
            target = area * float(torch.empty(1).uniform_(*self.scale, generator=g))
            aspect = math.exp(float(torch.empty(1).uniform_(*self.log_ratio, generator=g)))
            cw, ch = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
            if 0 < cw <= w and 0 < ch <= h:
                break
        else:
            ch = cw = min(h, w)
        top = int(torch.randint(0, h - ch + 1, (1,), generator=g))
        left = int(torch.randint(0, w - cw + 1, (1,), generator=g))
        out = F.resized_crop(image, top, left, ch, cw, [self.image_size, self.image_size], antialias=True)
        if float(torch.rand(1, generator=g)) < 0.5:
            out = out.flip(-1)
        return out.clamp(0, 1)

    def __getitem__(self, sample_id: int) -> tuple[torch.Tensor, int]:
        n = len(self.files)
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + sample_id)
        return self.crop(self.load(sample_id % n), g), (sample_id // n) % self.num_styles


class ResumableSampler(Sampler[int]):
    """The seeded stream of a whole run's sample ids (a fresh permutation each pass over the data),
    sharded across ranks; iteration starts at global position `start`, so a resumed run sees the same order.

    Its length is the whole run's on this rank, wherever it starts: Lightning counts the batches a
    resumed run did before into its epoch, and would otherwise end the epoch early and iterate again
    from `start`, repeating data (a resumed run must equal the uninterrupted one bit for bit)."""

    def __init__(self, num_files: int, total: int, seed: int, start: int = 0, rank: int = 0, world: int = 1) -> None:
        self.num_files, self.total, self.seed = num_files, total, seed
        self.start, self.rank, self.world = start, rank, world

    def __len__(self) -> int:
        return max(0, math.ceil((self.total - self.rank) / self.world))

    def __iter__(self) -> Iterator[int]:
        n = self.num_files
        perm, perm_epoch = None, -1
        for k in range(self.start + self.rank, self.total, self.world):
            epoch, pos = divmod(k, n)
            if epoch != perm_epoch:
                perm = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed + 7919 * epoch))
                perm_epoch = epoch
            yield int(perm[pos]) + n * k  # the id keeps the global position k: styles cycle by k


class ResumableLoader(DataLoader):
    """A DataLoader over a `ResumableSampler`, resumable in Lightning's sense (it has a state dict): its
    position is a function of the global step, which a checkpoint restores before the loader is built.
    The state records what that function depends on, so that a resume that changes it is reported."""

    def state_dict(self) -> dict[str, Any]:
        s = self.sampler
        return {"samples_per_step": self.batch_size * s.world, "seed": s.seed, "files": s.num_files}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        s = self.sampler
        now = {"samples_per_step": self.batch_size * s.world, "seed": s.seed, "files": s.num_files}
        changed = [f"{k} {state[k]} -> {now[k]}" for k in now if k in state and state[k] != now[k]]
        if changed:
            log.warning("resuming with other data settings (%s): the data order differs from an uninterrupted run",
                        ", ".join(changed))


class ValidationPhotos(Dataset):
    """Held-out photos, whole, resized to a long side of `size`: the same pictures at every validation,
    scored as `benchmarks/quality.py` scores a model (whole photos, not crops)."""

    def __init__(self, files: list[Path], size: int) -> None:
        self.files, self.size = files, size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> torch.Tensor:
        return resize_long_side(pil_to_tensor(load_pil(self.files[index])), self.size)


def without(files: list[Path], root: Path, exclude: Sequence[str | os.PathLike]) -> list[Path]:
    """`files` less those named in `exclude` (paths relative to `root`, or absolute); FaststError when
    nothing is left."""
    gone = {(root / e).resolve() for e in exclude}
    kept = [f for f in files if f.resolve() not in gone]
    if not kept:
        raise FaststError(f"every photo is excluded ({len(files)} of {len(files)})", root)
    if len(kept) == len(files):
        log.warning("%s: none of the %d excluded photos is among the training photos", root, len(gone))
    return kept


class StyleDataModule(L.LightningDataModule):
    """Crops of a folder of photos paired with style indices, in a seeded resumable order; with
    `val_data`, whole held-out photos for validation. Finds and checks its files in `setup`."""

    def __init__(self, data: str | os.PathLike, image_size: int = 256, batch_size: int = 4, num_styles: int = 1,
                 steps: int = 1000, seed: int = 0, workers: int = 0,
                 crop_scale: tuple[float, float] = DEFAULT_CROP_SCALE, val_data: str | os.PathLike | None = None,
                 exclude: Sequence[str | os.PathLike] = ()) -> None:
        super().__init__()
        self.data, self.image_size, self.batch_size = Path(data), image_size, batch_size
        self.num_styles, self.steps, self.seed, self.workers = num_styles, steps, seed, workers
        self.crop_scale = crop_scale
        self.val_data = None if val_data is None else Path(val_data)
        self.exclude = list(exclude)
        self.files: list[Path] = []
        self.val_files: list[Path] = []  # none: no validation

    def setup(self, stage: str | None = None) -> None:
        """The readable photos of `data` and `val_data` (FaststError where there are none)."""
        if self.files:
            return
        self.files, _ = readable_images(self.data)
        if self.exclude:
            self.files = without(self.files, self.data, self.exclude)
        if self.val_data is not None:
            self.val_files = scorable_photos(readable_images(self.val_data, "val_data")[0], self.image_size, self.val_data)
            if {f.resolve() for f in self.val_files} <= {f.resolve() for f in self.files}:
                log.warning("%s: every validation photo is also a training photo: val/loss will not show how the "
                            "model does on photos it has not seen", self.val_data)

    def train_dataloader(self) -> DataLoader:
        trainer = self.trainer
        world = trainer.world_size if trainer else 1
        rank = trainer.global_rank if trainer else 0
        done = trainer.global_step if trainer else 0  # restored before the loader is built on resume
        per_step = self.batch_size * world
        sampler = ResumableSampler(len(self.files), total=self.steps * per_step, seed=self.seed,
                                   start=done * per_step, rank=rank, world=world)
        return ResumableLoader(StyledCrops(self.files, self.image_size, self.num_styles, self.seed, self.crop_scale),
                               batch_size=self.batch_size, sampler=sampler, num_workers=self.workers,
                               persistent_workers=self.workers > 0, drop_last=True)

    def val_dataloader(self) -> DataLoader:
        """One whole held-out photo per batch (sizes differ); the module scores it in every style."""
        return DataLoader(ValidationPhotos(self.val_files, self.image_size), batch_size=1, num_workers=0)
