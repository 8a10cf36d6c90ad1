"""Quality against cost: the perceptual objective a fast model's outputs reach, against
what `gatys stylize` reaches after 50, 100 and 300 L-BFGS evaluations, on the same photos, style and
size, all scored by the one fixed scorer of gatys.optimize.score (vgg16-caffe, Gatys' default layers
and weights, fp32, at the output's size). A script that prints a table and writes CSV, not a test.

    python benchmarks/quality.py --style starry_night --size 256 --photos 8 --csv quality.csv
    python benchmarks/quality.py --model my.fst --style-image my_style.jpg --quick
    python benchmarks/quality.py --gatys-init noise   # Gatys from noise, as Johnson et al. compared
    python benchmarks/quality.py --sheet quality.jpg  # and look: photo, model output, Gatys outputs, objectives
    python benchmarks/quality.py --per-layer          # each style layer's share: where the model falls short
    python benchmarks/quality.py --finetune 600       # the network trained on each photo alone: what it can draw

objective = content_weight·content + style_weight·style with the scorer's weights (gatys.optimize's
DEFAULT_CONTENT_WEIGHT and DEFAULT_STYLE_WEIGHT, printed with the table); TV is in the CSV only.
Gatys optimises exactly this objective (plus TV) and so must win given enough evaluations; the
model was trained once for every photo, with its own loss weights. The question is how many
evaluations, and seconds, Gatys needs to reach the model's level.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tqdm import tqdm

import benchutil as bu  # noqa: E402 - also puts the repository on sys.path

COLUMNS = ("method", "photo", "size", "objective", "content", "style", "tv", "total_with_tv", "seconds")
SUMMARY_COLUMNS = ("method", "photos", "size", "objective", "content", "style", "seconds_per_image", "machine")


def default_photos() -> Path:
    return bu.shared_path("photos/misc") or bu.SAMPLES / "photos"


def style_dirs() -> list[Path]:
    shared = bu.shared_path("styles")
    return [bu.SAMPLES / "styles"] + ([shared] if shared else [])


def find_style_image(model, index: int) -> Path | None:
    """The style image a model was trained on, in the bundled and shared style folders."""
    from gatys.refine import find_style_image as find

    return find(model, index, style_dirs())


def finetuned_output(net, weights, content, style, steps: int, lr: float, device: str):
    """The network trained on this one photo alone, with Adam on Gatys' objective (what the scorer
    measures, plus TV) for `steps` steps, then run on it. Trained for this photo alone it should beat
    the model on it; by how much separates what the network can draw from what one network for every
    photo reaches (the amortisation gap). The model itself is left untouched."""
    import copy

    import torch

    import gatys.optimize as go
    from fastst.hardware import resolve_device
    from fastst.images import resize_long_side

    dev = resolve_device(device)
    net = copy.deepcopy(net).float().to(dev).train().requires_grad_(True)
    c_layers, s_layers = go.default_layers(go.SCORER_BACKBONE)
    lossnet = go.loss_network(go.SCORER_BACKBONE, list(dict.fromkeys(c_layers + s_layers)), dev)
    x = content.unsqueeze(0).to(dev)
    objective = go.Objective(lossnet, x, [resize_long_side(style, max(x.shape[-2:])).to(dev)], c_layers, s_layers,
                             bf16=go.bf16_default(dev))
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=go.bf16_default(dev))
    optimizer = torch.optim.Adam(net.parameters(), lr)
    weights = weights.to(dev)
    for _ in range(steps):
        with autocast:
            out = net(x, weights)
        loss = objective.terms(out.float())["total"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return net.eval()(x, weights)[0].float().clamp(0, 1).cpu()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    p.add_argument("--photos-dir", default=None, help=f"folder of photos (default {default_photos()})")
    p.add_argument("--photos", type=int, default=None, help="use the first N photos (default 8; quick 1)")
    p.add_argument("--model", default=None, help="fastst .fst model (default: the bundled pretrained model)")
    p.add_argument("--style", default=None, help="style name or index in the model (default: its first style)")
    p.add_argument("--strength", type=float, default=None,
                   help="the model's strength, 0 (the photo) to 1.5 (default: the model's own default)")
    p.add_argument("--style-image", default=None, help="that style's image (default: found by the hash the model stores)")
    p.add_argument("--size", type=int, default=None, help="long side of every photo and output, px (default 256; quick 64)")
    p.add_argument("--budgets", default=None,
                   help="Gatys L-BFGS evaluation budgets (default 50,100,300; quick 3,6; none: score the model only)")
    p.add_argument("--gatys-init", default="content", choices=["content", "noise", "model"],
                   help="Gatys' starting image: the photo (gatys stylize's default), seeded noise, as in "
                        "Johnson et al.'s comparison, or the model's output (Gatys refining the fast model; "
                        "its seconds then include the model's) (default content)")
    p.add_argument("--finetune", type=int, default=0, metavar="STEPS",
                   help="also score the network trained on each photo alone for STEPS Adam steps on Gatys' "
                        "objective (--finetune-lr): what the architecture can draw for one photo (default 0: off)")
    p.add_argument("--finetune-lr", type=float, default=3e-4, help="Adam's rate for --finetune (default 3e-4)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or auto; used by every method and the scorer")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                   help="the model's precision (default auto: bf16 on CPUs with hardware bf16); the scorer is fp32")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save", default=None, metavar="DIR", help="also save every output image into DIR")
    p.add_argument("--per-layer", action="store_true",
                   help="also print each style layer's weighted share of the style term (where a model falls short)")
    p.add_argument("--sheet", default=None, metavar="PATH",
                   help="also draw a contact sheet here: one row per photo, the photo then every method's output")
    p.add_argument("--quick", action="store_true", help="1 photo at 64 px, budgets 3 and 6 (smoke test)")
    p.add_argument("--csv", default=None, help="write the summary as CSV here (per-image rows beside it, *_images.csv)")
    args = p.parse_args(argv)

    import gatys.optimize as go
    from fastst.errors import FaststError
    from fastst.images import find_images, load_image, resize_long_side, save_image
    from fastst.inference.stylizer import Stylizer, stylize
    from fastst.modelfile import load_model

    size = args.size or (64 if args.quick else 256)
    spec = args.budgets or ("3,6" if args.quick else "50,100,300")
    budgets = [] if spec.strip().lower() == "none" else [int(b) for b in spec.split(",")]
    if any(b < 1 for b in budgets):
        p.error(f"--budgets: evaluation counts must be ≥ 1 (or none): {spec}")
    if args.strength is not None and not 0 <= args.strength <= 1.5:
        p.error(f"--strength must be in [0, 1.5], got {args.strength}")
    if args.finetune < 0 or not args.finetune_lr > 0:
        p.error("--finetune must be ≥ 0 steps and --finetune-lr positive")
    count = args.photos or (1 if args.quick else 8)
    if args.sheet and Path(args.sheet).suffix.lower() not in (".jpg", ".jpeg", ".png", ".webp"):
        p.error(f"--sheet {args.sheet}: the contact sheet must be a .jpg, .png or .webp file")
    try:
        model = load_model(args.model)
        index = model.style_index(args.style if args.style is not None else 0)
        style_path = Path(args.style_image) if args.style_image else find_style_image(model, index)
        if style_path is None:
            raise FaststError(f"cannot find the image of style '{model.style_names[index]}' (searched "
                              f"{', '.join(map(str, style_dirs()))}); pass --style-image", model.path)
        style = load_image(style_path)
        folder = Path(args.photos_dir) if args.photos_dir else default_photos()
        photos = find_images(folder)[:count]
        if not photos:
            raise FaststError("no images found", folder)
        save_dir = Path(args.save) if args.save else None
        if save_dir is not None:
            save_dir.mkdir(parents=True, exist_ok=True)
    except FaststError as e:
        p.error(str(e))
    name = model.style_names[index]
    stylizer = Stylizer(model, device=args.device, precision=args.precision)
    init_tag = {"content": "", "noise": ", noise init", "model": ", from the model"}[args.gatys_init]
    strength = model.default_strength if args.strength is None else args.strength
    methods = [f"fastst model ({stylizer.precision}, strength {strength:g})"]
    methods += [f"gatys L-BFGS {n} evals{init_tag}" for n in budgets]
    methods += [f"model trained on the photo, {args.finetune} steps"] if args.finetune else []
    machine = bu.machine_line(stylizer.device)
    print(f"# {machine}", file=sys.stderr)
    print(f"# model {model.path}, style '{name}' ({style_path}); {len(photos)} photo(s) from {folder} at {size} px",
          file=sys.stderr)

    # warm-up, untimed: the loss network's first build and the model's first call
    warm = resize_long_side(load_image(photos[0]), 32)
    go.stylize(warm, style, size=32, iterations=1, device=args.device)
    stylize(stylizer, warm, style=index, strength=args.strength)

    rows: list[dict] = []
    sheet_images, sheet_labels = [], []
    bar = tqdm(total=len(photos) * len(methods), unit="output", file=sys.stderr, dynamic_ncols=True, leave=False)
    for photo in photos:
        content = resize_long_side(load_image(photo), size)
        outputs = []
        t = time.perf_counter()
        outputs.append((methods[0], stylize(stylizer, content, style=index, strength=args.strength),
                        time.perf_counter() - t))
        bar.update(1)
        _, fast, fast_seconds = outputs[0]
        init, extra = (fast, fast_seconds) if args.gatys_init == "model" else (args.gatys_init, 0.0)
        for method, n in zip(methods[1:], budgets):
            bar.set_description(f"{photo.name[:20]}: {method}")
            t = time.perf_counter()
            r = go.stylize(content, style, size=size, iterations=n, seed=args.seed, init=init, device=args.device)
            outputs.append((method, r.image, time.perf_counter() - t + extra))
            bar.update(1)
        if args.finetune:
            bar.set_description(f"{photo.name[:20]}: {methods[-1]}")
            t = time.perf_counter()
            tuned = finetuned_output(model.net, model.style_weights(index), content, style, args.finetune,
                                     args.finetune_lr, args.device)
            outputs.append((methods[-1], tuned, time.perf_counter() - t))
            bar.update(1)
        if args.sheet:
            sheet_images.append(content)
            sheet_labels.append(photo.stem[:24])
        for method, image, seconds in outputs:
            s = go.score(content, style, image, device=args.device, per_layer=args.per_layer)
            objective = go.DEFAULT_CONTENT_WEIGHT * s["content"] + go.DEFAULT_STYLE_WEIGHT * s["style"]
            rows.append(dict(method=method, photo=photo.name, size=size, objective=objective, content=s["content"],
                             style=s["style"], tv=s["tv"], total_with_tv=s["total"], seconds=seconds,
                             **{k: go.DEFAULT_STYLE_WEIGHT * v for k, v in s.items() if k.startswith("style_")}))
            short = method.split(" (")[0]
            if save_dir is not None:
                save_image(image, save_dir / f"{photo.stem}__{short.replace(',', '').replace(' ', '_')}.png")
            if args.sheet:
                sheet_images.append(image)
                sheet_labels.append(f"{short}\n{objective:.3g}")
    bar.close()

    summary = []
    for method in methods:
        mine = [r for r in rows if r["method"] == method]
        mean = lambda k: sum(r[k] for r in mine) / len(mine)  # noqa: E731
        summary.append(dict(method=method, photos=len(mine), size=size, objective=mean("objective"),
                            content=mean("content"), style=mean("style"), seconds_per_image=mean("seconds"),
                            machine=machine))
    print(f"{len(photos)} photo(s) at {size} px, style '{name}'; fixed scorer {go.SCORER_BACKBONE}, objective = "
          f"{go.DEFAULT_CONTENT_WEIGHT:g}·content + {go.DEFAULT_STYLE_WEIGHT:g}·style (means over photos)")
    print(f"{'method':38s} {'objective':>12s} {'content':>12s} {'style':>12s} {'s/image':>9s}")
    for r in summary:
        print(f"{r['method']:38s} {r['objective']:12.4g} {r['content']:12.4g} {r['style']:12.4g} {r['seconds_per_image']:9.2f}")
    layer_keys = [k for k in rows[0] if k.startswith("style_")] if rows else []
    if layer_keys:
        print(f"\nweighted style term per layer ({go.DEFAULT_STYLE_WEIGHT:g}·share; they sum to the style column × "
              f"{go.DEFAULT_STYLE_WEIGHT:g})")
        print(f"{'method':38s} " + " ".join(f"{k[6:]:>10s}" for k in layer_keys))
        for method in methods:
            mine = [r for r in rows if r["method"] == method]
            print(f"{method:38s} " + " ".join(f"{sum(r[k] for r in mine) / len(mine):10.3g}" for k in layer_keys))
    if args.sheet:
        from fastst.sheets import contact_sheet

        print(f"wrote {contact_sheet(sheet_images, sheet_labels, Path(args.sheet), tile=192, cols=1 + len(methods), quality=85)}")
    if args.csv:
        path = bu.write_csv(args.csv, summary, SUMMARY_COLUMNS)
        per_image = path.with_name(path.stem + "_images.csv")
        bu.write_csv(per_image, rows, COLUMNS + tuple(layer_keys))
        print(f"wrote {path} and {per_image}")


if __name__ == "__main__":
    main()
