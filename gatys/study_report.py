"""The Gatys study's report: every table and sentence computed from the experiments' CSVs (summary.csv
per experiment, one CSV per run), written as report.md and report.html beside them."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .optimize import DEFAULT_STYLE_WEIGHT
from .report import Report, fmt
from .study_analysis import (
    TARGET_FACTOR,
    SweepData,
    budgets,
    join,
    leaders,
    load_sweep,
    optimizer_label,
    rate_results,
    reached,
    running_min,
)

OBJECTIVE_NOTE = ("*Objective*: each run's own total loss, α·content + β·style + TV weight·tv, as it logged it. "
                  "*Score*: the fixed scorer's total (vgg16-caffe, Gatys' layers, the default weights, fp32) of the "
                  "result, the same yardstick for every run; content and style are the scorer's unweighted terms.")


def write_report(out: Path) -> Path:
    """Read out/study.json and every experiment's CSVs; write out/report.md and out/report.html."""
    record = json.loads((out / "study.json").read_text(encoding="utf-8"))
    sweeps = {e: load_sweep(out / e) for e in record.get("experiments", [])}
    body = Report("")
    findings: list[str] = []
    sections = (("optimizers", _optimizers), ("learning_rates", _learning_rates), ("weights", _weights),
                ("layers", _layers), ("backbones", _backbones))
    for key, section in sections:
        if key in sweeps:
            findings += section(body, sweeps[key], sweeps, record)
    doc = Report(f"Gatys study: {record['content']} in the style of {join(record['styles'])}")
    _intro(doc, record, sweeps)
    doc.heading("What the numbers say")
    doc.bullets(findings)
    doc.blocks += body.blocks
    _files(doc, sweeps)
    return doc.write(out / "report.md")


def _label(record: dict[str, Any], style_image: str) -> str:
    """A style's display name: the sweep's label, or the first style's file stem in one-style sweeps."""
    return style_image or Path(record["styles"][0]).stem


def _intro(doc: Report, record: dict[str, Any], sweeps: dict[str, SweepData | None]) -> None:
    s = record["settings"]
    runs = [r for sw in sweeps.values() if sw for r in sw.rows]
    seconds = sum(float(r["seconds"]) for r in runs)
    evaluations = sum(int(r["evaluations"]) for r in runs)
    sessions = record.get("sessions", [])
    doc.para(f"Reproduced with `{record.get('command') or 'gatys study'}`: {len(runs)} runs of Gatys et al.'s "
             f"per-image optimisation of `{record['content']}` at {s['size']} px (long side), each "
             f"{s['iterations']} loss evaluations (forward + backward) from the photo, seed {s['seed']}, on "
             f"{record.get('cpu', 'an unknown CPU')} ({record.get('device', s['device'])}"
             f"{', bf16 autocast' if record.get('bf16') else ', fp32'}). {evaluations} evaluations took "
             f"{seconds:.0f} s of optimisation; the study {fmt(record.get('wall_seconds'))} s of wall time"
             + (f" over {len(sessions)} sessions (resumed)" if len(sessions) > 1 else "") + ".")
    doc.para(OBJECTIVE_NOTE)


def _optimizers(doc: Report, sweep: SweepData | None, sweeps: dict, record: dict[str, Any]) -> list[str]:
    doc.heading("Optimizers at equal evaluations")
    if not sweep:
        doc.para("Not run.")
        return []
    doc.para(f"Every optimizer gets the same number of loss evaluations (L-BFGS's line-search trials count), its "
             f"default learning rate (SGD: momentum 0.9, its first step set from the first gradient) and the default "
             f"weights. *Target*: {TARGET_FACTOR:g}× the lowest final objective of any optimizer on that style.")
    findings, board = [], []
    at = budgets(int(record["settings"]["iterations"]))
    for style in dict.fromkeys(r["style_image"] for r in sweep.rows):
        rows = sweep.where(style_image=style)
        curves = {r["optimizer"]: running_min(sweep.log(r)) for r in rows}
        target = TARGET_FACTOR * min(c[-1] for c in curves.values())
        table, hits = [], []
        for r in rows:
            hit = reached(sweep.log(r), target)
            per_eval = 1000 * float(r["seconds"]) / int(r["evaluations"])
            table.append([optimizer_label(r["optimizer"]), fmt(r["lr"]), fmt(r["objective_total"]), fmt(r["total"]),
                          f"{float(r['seconds']):.1f}", f"{per_eval:.0f}", hit[0] if hit else "not reached",
                          f"{hit[1]:.1f}" if hit else "–"])
            hits.append((hit, r["optimizer"], per_eval))
        label = _label(record, style)
        doc.heading(f"Style: {label} (target {fmt(target)})", 3)
        doc.table(["optimizer", "learning rate", "final objective", "score", "seconds", "ms / evaluation",
                   f"evaluations to {fmt(target)}", "seconds to it"], table)
        lead = leaders(curves, at)
        board.append(lead)
        findings.append(_leader_sentence(label, lead))
        findings.append(_target_sentence(label, target, hits, int(record["settings"]["iterations"])))
        if len(board) == 1:
            fast, slow = min(hits, key=lambda h: h[2]), max(hits, key=lambda h: h[2])
            findings.append(f"An evaluation took {fast[2]:.0f} ms ({optimizer_label(fast[1])}) to {slow[2]:.0f} ms "
                            f"({optimizer_label(slow[1])}) on {label}.")
    styles = [_label(record, s) for s in dict.fromkeys(r["style_image"] for r in sweep.rows)]
    doc.para("The lowest objective reached within each budget:")
    doc.table(["evaluations"] + styles, [[b] + [f"{optimizer_label(col[i][1])} ({fmt(col[i][2])})" for col in board]
                                           for i, b in enumerate(at)])
    doc.image("optimizers/plot_optimizer.png", "loss curves of the six optimizers, log scale")
    doc.image("optimizers/contact_sheet.jpg", "the optimizers' results")
    return findings


def _leader_sentence(label: str, lead: list[tuple[int, str, float]]) -> str:
    """'On X the lowest objective is Adam's after 15 evaluations, L-BFGS's after 38, 75 and 150.'"""
    parts: list[tuple[str, list[int]]] = []
    for b, opt, _ in lead:
        if parts and parts[-1][0] == opt:
            parts[-1][1].append(b)
        else:
            parts.append((opt, [b]))
    if len(parts) == 1:
        budgets = join([str(b) for b, _, _ in lead])
        return f"On {label} {optimizer_label(parts[0][0])} has the lowest objective at every budget ({budgets} evaluations)."
    said = [f"{optimizer_label(opt)}'s after {join([str(b) for b in bs])}" for opt, bs in parts]
    return f"On {label} the lowest objective is {said[0]} evaluation{'s' if parts[0][1] != [1] else ''}, " \
        + join(said[1:]) + "."


def _target_sentence(label: str, target: float, hits: list, evaluations: int) -> str:
    done = sorted((h for h in hits if h[0]), key=lambda h: h[0][0])
    missed = [optimizer_label(h[1]) for h in hits if not h[0]]
    text = f"To reach {fmt(target)} on {label}: " + ", ".join(
        f"{optimizer_label(opt)} {hit[0]} evaluations ({hit[1]:.1f} s)" for hit, opt, _ in done)
    return text + (f"; {join(missed)} not within {evaluations}." if missed else ".")


def _learning_rates(doc: Report, sweep: SweepData | None, sweeps: dict, record: dict[str, Any]) -> list[str]:
    doc.heading("Learning rate per first-order optimizer")
    comparison = sweeps.get("optimizers")
    if not sweep or not comparison:
        doc.para("Not run.")
        return []
    first = comparison.rows[0]["style_image"]
    reference = {r["optimizer"]: float(r["lr"]) for r in comparison.where(style_image=first)}
    results = rate_results(sweep, reference)
    doc.para(f"Each first-order optimizer on {_label(record, '')} at rates a decade either side of the one it used "
             "above (its default; SGD's set from its first gradient), same budget. *Spread*: the worst final "
             "objective over the best across the rates tried (1 = insensitive).")
    table, findings = [], []
    for res in results:
        rate, best = res.best
        rel = res.at_reference
        table.append([optimizer_label(res.optimizer), ", ".join(fmt(p[0]) for p in res.points), fmt(rate),
                      f"{rate / res.reference:.2g}×", fmt(best), "–" if rel is None else f"{rel:.3g}×",
                      f"{res.spread:.3g}×"])
        where = "its default" if abs(rate / res.reference - 1) < 0.01 else \
            f"{rate / res.reference:.2g}× its default {fmt(res.reference)}"
        findings.append(f"{optimizer_label(res.optimizer)}: best rate {fmt(rate)} ({where}), final objective {fmt(best)}; "
                        f"across {fmt(res.points[0][0])}–{fmt(res.points[-1][0])} it varied {res.spread:.3g}×.")
    doc.table(["optimizer", "rates tried", "best rate", "÷ default", "best final objective",
               "default's ÷ best", "spread"], table)
    ranked = sorted(results, key=lambda r: r.spread)
    findings.append(f"Least sensitive to its rate: {optimizer_label(ranked[0].optimizer)} ({ranked[0].spread:.3g}×); most: "
                    f"{optimizer_label(ranked[-1].optimizer)} ({ranked[-1].spread:.3g}×).")
    doc.image("learning_rates/plot_lr.png", "loss curves per optimizer and rate, and the final objective "
                                            "against the rate")
    doc.image("learning_rates/contact_sheet.jpg", "results per optimizer (rows) and rate (columns)")
    return findings


def _weights(doc: Report, sweep: SweepData | None, sweeps: dict, record: dict[str, Any]) -> list[str]:
    doc.heading("Content:style weight ratio")
    if not sweep:
        doc.para("Not run.")
        return []
    betas = sorted({float(r["style_weight"]) for r in sweep.rows})
    doc.para(f"L-BFGS with α = 1 and β from {fmt(betas[0])} to {fmt(betas[-1])}, photo-like to texture-like (the "
             f"default β, {fmt(DEFAULT_STYLE_WEIGHT)}, is tuned for 512 px and weighs 4× more per halving of the "
             "size). Content and style are the fixed scorer's unweighted terms of each result.")
    table, findings = [], []
    for style in dict.fromkeys(r["style_image"] for r in sweep.rows):
        rows = sorted(sweep.where(style_image=style), key=lambda r: float(r["style_weight"]))
        label = _label(record, style)
        table += [[label, f"{fmt(r['content_weight'])}:{fmt(r['style_weight'])}", fmt(r["content"]), fmt(r["style"]),
                   fmt(r["tv"]), fmt(r["total"])] for r in rows]
        lo, hi = rows[0], rows[-1]
        findings.append(f"On {label}, raising β from {fmt(lo['style_weight'])} to {fmt(hi['style_weight'])} "
                        f"multiplied the content term by {float(hi['content']) / float(lo['content']):.3g} and the "
                        f"style term by {float(hi['style']) / float(lo['style']):.3g}.")
    doc.table(["style image", "α:β", "content", "style", "tv", "score"], table)
    doc.image("weights/contact_sheet.jpg", "results from photo-like (left) to texture-like (right), a row per style")
    return findings


def _layers(doc: Report, sweep: SweepData | None, sweeps: dict, record: dict[str, Any]) -> list[str]:
    doc.heading("Content and style layers")
    if not sweep:
        doc.para("Not run.")
        return []
    doc.para("L-BFGS with the content layer early (relu2_2) or deep (relu4_2, the default) and the style layers "
             "shallow (relu1_1, relu2_1) or all five (relu1_1…relu5_1), β and the TV weight matched per layer set "
             "(`--match-weights`) so that each keeps the default's balance. The fixed scorer uses the default "
             "layers, which favours them by construction.")
    doc.table(["content layers", "style layers", "β used", "tv weight used", "content", "style", "score"],
              [[r["content_layers"], r["style_layers"].replace("+", ", "), fmt(r["style_weight"]),
                fmt(r["tv_weight"]), fmt(r["content"]), fmt(r["style"]), fmt(r["total"])] for r in sweep.rows])
    findings = []
    by = {(r["content_layers"], len(r["style_layers"].split("+"))): r for r in sweep.rows}
    full = max(k[1] for k in by)
    deep = [k for k in by if k[1] == full and k[0] != "relu2_2"]
    if ("relu2_2", full) in by and deep:
        a, b = by[("relu2_2", full)], by[deep[0]]
        findings.append(f"Content from relu2_2 instead of {b['content_layers']} (all style layers): scorer content "
                        f"term ×{float(a['content']) / float(b['content']):.3g}, style term "
                        f"×{float(a['style']) / float(b['style']):.3g}.")
    shallow = [k for k in by if k[1] < full and k[0] != "relu2_2"]
    if shallow and deep:
        a, b = by[shallow[0]], by[deep[0]]
        findings.append(f"Style from {a['style_layers'].replace('+', ' and ')} only instead of all {full} layers: "
                        f"scorer style term ×{float(a['style']) / float(b['style']):.3g}, content term "
                        f"×{float(a['content']) / float(b['content']):.3g}.")
    doc.image("layers/contact_sheet.jpg", "content layer (rows) and style layers (columns)")
    return findings


def _backbones(doc: Report, sweep: SweepData | None, sweeps: dict, record: dict[str, Any]) -> list[str]:
    doc.heading("Loss networks at matched balance")
    doc.para("L-BFGS on each loss network whose weights are here, β and the TV weight matched to vgg16-caffe's "
             "balance (`--match-weights`), scored by the fixed vgg16-caffe scorer.")
    rows = {r["backbone"]: r for r in (sweep.rows if sweep else [])}
    table, ran, skipped = [], [], []
    for bb in record.get("backbones", []):
        r = rows.get(bb["source"] or "")
        if r is None:
            reason = (bb["reason"] or "not run").split(";")[0]  # the cause, without the advice after it
            table.append([bb["name"], f"skipped: {reason}"] + ["–"] * 6)
            skipped.append(bb["name"])
            continue
        per_eval = 1000 * float(r["seconds"]) / int(r["evaluations"])
        ran.append((bb["name"], per_eval))
        source = "bundled, offline" if bb["name"] == "vgg16-caffe" else \
            ("torchvision" if bb["source"] == bb["name"] else f"file {Path(bb['source']).name}")
        table.append([bb["name"], f"ran ({source})", f"{per_eval:.0f}", fmt(r["style_weight"]), fmt(r["tv_weight"]),
                      fmt(r["content"]), fmt(r["style"]), fmt(r["total"])])
    doc.table(["backbone", "status", "ms / evaluation", "β used", "tv weight used", "content", "style", "score"], table)
    findings = []
    if ran:
        base = ran[0][1]
        findings.append("Per evaluation: " + ", ".join(f"{n} {ms:.0f} ms" + (f" ({ms / base:.2g}× {ran[0][0]})"
                                                                              if k else "")
                                                       for k, (n, ms) in enumerate(ran)) + ".")
    if skipped:
        findings.append(f"Skipped for want of weights: {join(skipped)} (see the table for why; give a weights file "
                        "to include them).")
    if sweep and len(sweep.rows) > 1:
        doc.image("backbones/contact_sheet.jpg", "results per loss network")
    return findings


def _files(doc: Report, sweeps: dict[str, SweepData | None]) -> None:
    doc.heading("Files")
    doc.para("Every number above comes from these CSVs: per experiment a `summary.csv` (one row per run: its "
             "settings, the learning rate it used, seconds, the scorer's terms and its own final objective) and "
             "`runs/*.csv` (one row per evaluation: iteration, seconds, content, style, tv, total); plots are "
             "`plot_*.png` beside them.")
    doc.bullets([f"[{e}/summary.csv]({e}/summary.csv): {len(sw.rows)} run{'s' if len(sw.rows) != 1 else ''}"
                 for e, sw in sweeps.items() if sw])
