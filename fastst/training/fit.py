"""`train()`: check the inputs, build the module, the data, the callbacks and the Trainer, and fit.
Devices, precision, strategy, checkpoints, logs and the progress bar are the Trainer's."""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

from ..checkpoint_io import AtomicCheckpointIO
from ..controls import groups
from ..data import StyleDataModule
from ..errors import FaststError, Interrupted
from ..hardware import default_precision
from ..images import load_image, uniform_border
from ..modelfile import StyleInfo, StyleModel, load_model
from ..paths import check_not_inputs, check_writable_folder
from ..transformer import DEFAULT_WIDTH
from .callbacks import PreviewGrid, ProgressBar, ValidateLastStep, WriteModelFile
from .checkpoints import checkpoint_width, read_checkpoint
from .config import TrainConfig
from .guards import NonFiniteLoss, StopOnInterrupt, StopOnNonFiniteLoss, make_trainer
from .metrics import keep_metrics_history
from .module import StyleTransferModule
from .rows import model_rows, plan_rows
from .surgery import warm_start

log = logging.getLogger(__name__)
LIGHTNING_PRECISION = {"bf16": "bf16-mixed", "fp16": "16-mixed", "fp32": "32-true"}


def trainer_precision(accelerator: str = "auto") -> str:
    """The Trainer precision for training on `accelerator`, from the one policy in `fastst.hardware`:
    bf16-mixed on GPUs and on CPUs that compute bf16 in hardware, else 32-true (16-mixed on old GPUs)."""
    return LIGHTNING_PRECISION[default_precision(accelerator, "training")]


LIGHTNING_LOGGERS = ("lightning.pytorch", "lightning.fabric")
# warnings a fastst run causes on purpose: its loader has no workers by default, a short run logs less
# often than the interval, the loss network is frozen (in eval mode), and a PyTorch deprecation inside Lightning
EXPECTED_WARNINGS = (".*LeafSpec.*", ".*does not have many workers.*", ".*smaller than the logging interval.*",
                     r".*module\(s\) in eval mode at the start of training.*")
RESUME_WARNING = r".*(Experiment logs|Checkpoint) directory .* exists and is not empty"


def quiet_lightning() -> None:
    """For scripts: keep Lightning's info chatter (tips, 'GPU available: False') and the warnings of
    EXPECTED_WARNINGS off the console for the rest of the process. `train` keeps them off within itself."""
    for name in LIGHTNING_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for message in EXPECTED_WARNINGS:
        warnings.filterwarnings("ignore", message=message)


@contextlib.contextmanager
def _quiet_run(resuming: bool) -> Iterator[None]:
    """`quiet_lightning` within the block only; a resumed run also reuses its folders on purpose."""
    loggers = [logging.getLogger(name) for name in LIGHTNING_LOGGERS]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings():
        quiet_lightning()
        if resuming:
            warnings.filterwarnings("ignore", message=RESUME_WARNING)
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)


def style_name(path: str | os.PathLike) -> str:
    """A style's default name: its image file's stem."""
    return Path(path).stem


def warn_if_framed(path: str | os.PathLike, image: Any) -> bool:
    """Warn (and return True) when a style image has a flat border on two or more sides, 3 px or
    wider: a scan's frame or a letterbox, which the model would learn to draw along every output's edges."""
    border = uniform_border(image)
    if sum(b >= 3 for b in border) < 2:
        return False
    log.warning("%s: flat border of %d, %d, %d, %d px (top, bottom, left, right); the model will learn to draw "
                "it along its outputs' edges: trim it from the style image", path, *border)
    return True


def _check_styles(styles: Sequence[str | os.PathLike], style_names: Sequence[str] | None,
                  identity: bool = False) -> tuple[list[str], list[str]]:
    """The style image paths (each loaded once: a missing or corrupt one fails here) and unique names;
    none are needed by a run that trains an identity row alone."""
    paths = [str(Path(s)) for s in styles]
    if not paths and not identity:
        raise FaststError("at least one style image is needed")
    for s in paths:
        warn_if_framed(s, load_image(s))
    names = list(style_names) if style_names else [style_name(s) for s in paths]
    if len(set(names)) != len(names):
        raise FaststError(f"style names must be unique: {', '.join(names)}")
    return paths, names


def _check_output(out: Path, log_dir: Path, inputs: Sequence[str | os.PathLike | None],
                  folders: Sequence[str | os.PathLike | None], resume: str | os.PathLike | None,
                  init: str | os.PathLike | None) -> None:
    """The model file and log folder: a .fst name, folders that take files, and never an input of the
    run (`inputs`: files it reads; `folders`: folders whose photos it reads), through links."""
    if out.suffix != ".fst":
        raise FaststError("the model file should end in .fst", out)
    if resume is not None and not Path(resume).is_file():
        raise FaststError("no such checkpoint", resume)
    if resume is not None and init is not None:
        raise FaststError("give 'resume' (a checkpoint of this run) or 'init' (a model to start from), not both")
    check_not_inputs([out, log_dir], inputs, folders)
    check_writable_folder(out.parent)
    check_writable_folder(log_dir, create=True)


def _kept_rows(styles: Sequence[str | os.PathLike], names: Sequence[str] | None, cfg: TrainConfig,
               start: StyleModel | None, resumed: dict[str, Any] | None, keep_rows: bool,
               resume: str | os.PathLike | None) -> list[StyleInfo] | None:
    """The init model's rows (or a resumed run's, where it trained those) when every row of the model
    trains in place: asked for (`keep_rows`), or a run with an init model and no style image (e.g.
    `--preset stable`). The style images then name the model's styles whose rows the style term covers;
    every style row needs one unless the style weight is 0. None: rows planned from the style images.
    `start`: the init model, `resumed`: the checkpoint `resume` read."""
    if keep_rows and (cfg.identity or cfg.strength_rows):
        raise FaststError("'keep_rows' trains the init model's rows as they are; 'identity' and 'strength_rows' plan "
                          "new ones: give one")
    if cfg.identity or cfg.strength_rows or not (keep_rows or (not styles and (start is not None or resumed is not None))):
        return None
    if resumed is not None:
        meta = resumed["fastst"]
        if not meta["config"].get("rows_of_init"):
            if keep_rows:
                raise FaststError("this checkpoint's run did not keep an init model's rows: resume it without "
                                  "'keep_rows'", resume)
            return None
        kept = [StyleInfo.from_dict(s) for s in meta["styles"]]
    elif start is None:
        raise FaststError("'keep_rows' trains the rows of an init model: give 'init' MODEL")
    else:
        kept = list(start.styles)
    given = set(names or (style_name(s) for s in styles))
    missing = [name for name in groups(kept) if name not in given]
    if cfg.style_weight and missing:
        raise FaststError(f"the style term needs every style's image: give one for {', '.join(missing)} "
                          "(NAME=IMG), or a style weight of 0 (e.g. the stable preset)")
    return kept


def _starting_point(cfg: TrainConfig, start: StyleModel | None, resumed: dict[str, Any] | None,
                    resume: str | os.PathLike | None, names: Sequence[str] = ()) -> TrainConfig:
    """The config with its width settled for the model the run starts from (`start`) or the checkpoint
    it continues (`resumed`, read from `resume`): as given, else theirs, else the default."""
    if cfg.only_norms and start is None and resume is None:
        raise FaststError("'only_norms' trains the norm parameters of a trained network: give 'init' MODEL")
    if cfg.strength_rows and (not cfg.only_norms or cfg.identity):
        raise FaststError("'strength_rows' adds rows to a trained model's identity row and styles: give 'init' "
                          "MODEL and 'only_norms', without 'identity'")
    if cfg.distill and start is None and resume is None:
        raise FaststError("'distill' keeps the look of the model the run starts from: give 'init' MODEL")
    resumed_width = checkpoint_width(resumed) if resumed is not None else None
    trained = [s["name"] for s in resumed["fastst"]["styles"]] if resumed is not None else list(names)
    if names and trained != list(names):
        raise FaststError(f"the checkpoint's styles are {', '.join(trained)}; this run's are {', '.join(names)}: "
                          "resume with the same styles in the same order", resume)
    if cfg.width is None:
        cfg = dataclasses.replace(cfg, width=start.net.width if start is not None else resumed_width or DEFAULT_WIDTH)
    if resumed_width is not None and cfg.width != resumed_width:
        raise FaststError(f"the checkpoint's network has width {resumed_width}, not {cfg.width}", resume)
    if cfg.only_norms and start is not None and cfg.width != start.net.width:
        raise FaststError(f"'only_norms' keeps the init model's convs: its width is {start.net.width}, not {cfg.width}")
    return cfg


def _callbacks(cfg: TrainConfig, log_dir: Path, out: Path, half: bool, start: StyleModel | None,
               progress: bool, validate: bool) -> list[Callback]:
    callbacks: list[Callback] = [
        StopOnNonFiniteLoss(),
        StopOnInterrupt(log_dir / "checkpoints" / "last.ckpt"),
        ModelCheckpoint(dirpath=str(log_dir / "checkpoints"), every_n_train_steps=cfg.checkpoint_every,
                        save_last=True, save_top_k=1, monitor=None),
        PreviewGrid(cfg.preview_every),
        WriteModelFile(out, half=half, base=start if cfg.only_norms else None),
    ]
    if progress:
        callbacks.append(ProgressBar(refresh_rate=1))
    if validate:
        callbacks.append(ValidateLastStep())
    return callbacks


def _loggers(log_dir: Path, tensorboard: bool) -> list:
    loggers: list = [CSVLogger(str(log_dir), name="", version="")]
    if tensorboard:
        from lightning.pytorch.loggers import TensorBoardLogger
        loggers.append(TensorBoardLogger(str(log_dir), name="tensorboard", version=""))
    return loggers


def train(styles: Sequence[str | os.PathLike], data: str | os.PathLike, out: str | os.PathLike,
          config: TrainConfig | None = None, log_dir: str | os.PathLike | None = None,
          resume: str | os.PathLike | None = None, accelerator: str = "auto", devices: int | str = "auto",
          precision: str | None = None, strategy: str = "auto", style_names: Sequence[str] | None = None,
          num_nodes: int = 1, tensorboard: bool = False, progress: bool = True, half: bool = False,
          init: str | os.PathLike | None = None, val_data: str | os.PathLike | None = None,
          exclude: Sequence[str | os.PathLike] = (), keep_rows: bool = False) -> Path:
    """Train a TransformerNet on the photos in `data` for the given style images; write the model
    file `out` atomically and return its path. Checkpoints, previews and logs go to `log_dir`.
    `init` starts from a trained .fst model ("pretrained": the bundled one), see `warm_start`.
    `val_data`: a folder of held-out photos, scored whole in every style at every checkpoint
    (`StyleTransferModule.validation_step`); their final loss goes into the model file. `exclude`: photos
    of `data` to leave out (paths relative to `data`, or absolute), e.g. a held-out test set. `keep_rows`:
    train every row of the `init` model in place (its table and default strength kept), the style images
    naming its styles (NAME=IMG); implied by a run with `init` and no style image."""
    out = Path(out)
    log_dir = Path(log_dir) if log_dir else out.with_suffix("").parent / (out.stem + "_logs")
    _check_output(out, log_dir, [*styles, None if str(init) == "pretrained" else init, resume], [data, val_data],
                  resume, init)
    cfg = config or TrainConfig()
    start = load_model(None if str(init) == "pretrained" else init) if init is not None else None
    resumed = read_checkpoint(resume) if resume is not None else None
    kept = _kept_rows(styles, style_names, cfg, start, resumed, keep_rows, resume)
    if kept is None:
        paths, names = _check_styles(styles, style_names, cfg.identity)
        rows = [r.name for r in plan_rows(paths, names, cfg)]
    else:
        paths, names = _check_styles(styles, style_names, identity=True) if styles else ([], [])
        rows = [r.name for r in model_rows(kept, dict(zip(names, paths)))]
    cfg = _starting_point(cfg, start, resumed, resume, rows)
    datamodule = StyleDataModule(data, cfg.image_size, cfg.batch_size, len(rows), cfg.steps, cfg.seed, cfg.workers,
                                 cfg.crop_scale, val_data=val_data, exclude=exclude)
    datamodule.setup("fit")  # bad data fails now, before anything is written
    validate = bool(datamodule.val_files)
    # validation at every checkpoint, counted in global steps (so a resumed run keeps the schedule)
    validation: dict[str, Any] = dict(limit_val_batches=0)
    if validate:
        validation = dict(check_val_every_n_epoch=None, val_check_interval=min(cfg.checkpoint_every, cfg.steps))
    with _quiet_run(resuming=resume is not None):
        trainer = make_trainer(
            accelerator=accelerator, devices=devices, num_nodes=num_nodes, strategy=strategy,
            precision=precision or trainer_precision(accelerator), max_steps=cfg.steps, max_epochs=-1,
            logger=_loggers(log_dir, tensorboard), callbacks=_callbacks(cfg, log_dir, out, half, start, progress, validate),
            log_every_n_steps=min(cfg.log_every, cfg.steps), enable_progress_bar=progress, enable_model_summary=False,
            use_distributed_sampler=False, default_root_dir=str(log_dir), deterministic=False, num_sanity_val_steps=0,
            plugins=[AtomicCheckpointIO()], **validation)
        L.seed_everything(cfg.seed, workers=True, verbose=False)  # before the network's random initialisation
        module = StyleTransferModule(paths, names, cfg.to_dict(), kept_rows=kept)
        if start is not None and (kept is not None or cfg.only_norms):  # the init model's table, and its default
            module.default_strength = start.default_strength
        if start is not None:
            new = warm_start(module.net, rows, start, module.rows)
            module.init_info = {"model": start.path.name, "steps_done": int(start.config.get("steps_done", 0)),
                                "new_styles": new}
            if cfg.distill:  # the teacher is the started network itself, before any step
                module.teacher.load_state_dict(module.net.state_dict())
        keep_metrics_history(log_dir, resuming=resume is not None)
        _fit(trainer, module, datamodule, resume, log_dir / "checkpoints" / "last.ckpt")
    return out


def _close_bar(trainer: L.Trainer) -> None:
    """End the progress bar's line, so that an error printed next starts a line of its own."""
    bar = getattr(trainer.progress_bar_callback, "_train_progress_bar", None)
    if bar is not None and not getattr(bar, "disable", True):
        bar.close()


def _fit(trainer: L.Trainer, module: StyleTransferModule, datamodule: StyleDataModule,
         resume: str | os.PathLike | None, last: Path) -> None:
    """trainer.fit, with a non-finite loss naming the checkpoint kept and Lightning's exit on Ctrl-C
    (before the loop, or a second Ctrl-C) turned into Interrupted."""
    try:
        try:
            trainer.fit(module, datamodule=datamodule, ckpt_path=str(resume) if resume else None)
        finally:
            _close_bar(trainer)
    except NonFiniteLoss as e:
        raise NonFiniteLoss(f"{e}; the last checkpoint, {last}, is kept" if last.is_file() else str(e)) from None
    except SystemExit:
        if not trainer.interrupted:
            raise
        if last.is_file():
            raise Interrupted(f"interrupted; the run resumes from {last}", checkpoint=last) from None
        raise Interrupted("interrupted before the first checkpoint") from None
