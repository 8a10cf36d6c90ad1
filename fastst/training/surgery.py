"""Model surgery between a run and a trained model: a network started from the model (warm_start),
and an only-norms run merged back into it (keep_other_styles)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..controls import STRENGTH, identity_index, leads_to
from ..errors import FaststError
from ..modelfile import StyleInfo, StyleModel
from ..transformer import TransformerNet

IDENTITY_SKIP_START = 0.5  # a new identity row starts with its input skip half open


def warm_start(net: TransformerNet, style_names: Sequence[str], model: StyleModel,
               rows: Sequence[Any] | None = None) -> list[str]:
    """Start `net` from a trained model: all conv weights, and each row's norm scale and shift (and
    input-skip gain) where the model has a row of that name, else its group's row (a new style-size
    row of a style starts from that style); other rows start from the mean of the model's styles (a
    neutral point between them), an identity row with its skip half open. `rows`: the run's rows
    (name, kind, group), for those fallbacks. A wider `net` grows the model without changing what it
    computes: the extra channels' outgoing weights start at zero, so training adds them to a working
    model. Returns the names that were new to the model."""
    source = model.net
    if source.output != net.output:
        raise FaststError(f"has a {source.output} output head (an imported model), which fastst training does not "
                          f"use: it cannot be trained further", model.path)
    if len(source.residual) != len(net.residual):
        raise FaststError(f"has {len(source.residual)} residual blocks, this run {len(net.residual)}", model.path)
    if source.width > net.width:
        raise FaststError(f"has width {source.width}, wider than this run's {net.width}: a model cannot be narrowed",
                          model.path)
    index = {s.name: i for i, s in enumerate(model.styles)}
    new = [name for name in style_names if name not in index]
    by_name = {r.name: r for r in rows or ()}
    source_row = [index.get(name, index.get(getattr(by_name.get(name), "group", None) or "", -1)) for name in style_names]
    styles = [i for i, s in enumerate(model.styles) if s.kind == "style"] or list(range(len(model.styles)))
    with torch.no_grad():
        for row, (name, src) in enumerate(zip(style_names, source_row)):
            identity = getattr(by_name.get(name), "kind", "style") == "identity"
            net.skip[row] = source.skip[src] if src >= 0 else (IDENTITY_SKIP_START if identity else 0.0)
        for name, param in net.named_parameters():
            if name.endswith((".scale", ".shift")) or name == "skip":
                continue
            src = source.get_parameter(name)
            param[tuple(slice(0, n) for n in src.shape)] = src
            if param.dim() == 4:  # the old outputs ignore the new input channels
                param[: src.shape[0], src.shape[1]:] = 0
        for mine, theirs in zip(net.norms(), source.norms()):
            channels = theirs.scale.shape[1]
            for table, src in ((mine.scale, theirs.scale), (mine.shift, theirs.shift)):
                for row, i in enumerate(source_row):
                    table[row, :channels] = src[i] if i >= 0 else src[styles].mean(0)
        _start_strength_rows(net, style_names, model, by_name, new)
    return new


def _start_strength_rows(net: TransformerNet, style_names: Sequence[str], model: StyleModel,
                         by_name: dict[str, Any], new: Sequence[str]) -> None:
    """A new strength row at s starts where the plain strength path put s: its norm rows and skip gain
    (1 − s)·identity + s·style, from the model's identity row and the style row it leads to."""
    steps = [(row, by_name[name]) for row, name in enumerate(style_names)
             if name in new and getattr(by_name.get(name), "kind", "style") == STRENGTH]
    ident = identity_index(model.styles)
    if steps and ident is None:
        raise FaststError("has no identity row, which strength rows start from: add one first (identity)", model.path)
    source = model.net
    for row, plan in steps:
        parent = next((i for i, s in enumerate(model.styles) if leads_to(plan, s)), None)
        if parent is None:
            raise FaststError(f"has no row of style '{plan.group}' at style size {plan.style_size} for the strength "
                              "rows to lead to (give that style's style size)", model.path)
        f = float(plan.strength)
        net.skip[row] = torch.lerp(source.skip[ident], source.skip[parent], f)
        for mine, theirs in zip(net.norms(), source.norms()):
            channels = theirs.scale.shape[1]
            for table, src in ((mine.scale, theirs.scale), (mine.shift, theirs.shift)):
                table[row, :channels] = torch.lerp(src[ident], src[parent], f)


def keep_other_styles(start: StyleModel, net: TransformerNet, infos: list[StyleInfo]) -> tuple[TransformerNet, list[StyleInfo]]:
    """After an only-norms run: the init model's styles (each replaced by this run's if it retrained one
    of that name) followed by this run's new styles, in one network with the shared convs."""
    trained = {s.name for s in infos}
    order = [s.name for s in start.styles] + [s.name for s in infos if s.name not in {t.name for t in start.styles}]
    merged = TransformerNet(num_styles=len(order), residual_blocks=len(net.residual), width=net.width)
    warm_start(merged, order, StyleModel(net, infos), infos)  # the convs and this run's rows
    kept = {s.name: i for i, s in enumerate(start.styles) if s.name not in trained}
    with torch.no_grad():  # the init model's untouched rows
        for mine, theirs in zip(merged.norms(), start.net.norms()):
            for row, name in enumerate(order):
                if name in kept:
                    mine.scale[row], mine.shift[row] = theirs.scale[kept[name]], theirs.shift[kept[name]]
        for row, name in enumerate(order):
            if name in kept:
                merged.skip[row] = start.net.skip[kept[name]]
    by_name = {s.name: s for s in start.styles} | {s.name: s for s in infos}
    return merged, [by_name[name] for name in order]
