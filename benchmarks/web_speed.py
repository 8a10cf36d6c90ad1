"""Speed of the web page `fastst export --web` writes, in headless Chromium, next to `fastst infer` on the
same machine.

Exports the model's page (or uses --site), serves it on 127.0.0.1 twice, cross-origin isolated (so
onnxruntime-web runs WebAssembly on min(4, CPUs) threads) and not (one thread), and times the network
call in the page (`fastst.timeRun`: the ONNX graph on a WxH input, no drawing) at each size. Then the
same network in this process the way `fastst infer` runs it: PyTorch at the default precision, PyTorch
fp32, and ONNX Runtime. Medians of --repeats runs after one warm-up run; other load on the machine
inflates every figure (the load average is printed).

    python benchmarks/web_speed.py                       # bundled model, 256² and 512² (~3 min idle)
    python benchmarks/web_speed.py --model my.fst --sizes 256 384 512 --repeats 7 --csv web.csv

WebGPU is not timed: headless Chromium here has only a software adapter (SwiftShader) when
--enable-unsafe-webgpu is given, which says nothing about a real GPU.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch

import benchutil as bu  # also puts the repository on sys.path
from export.web import write_site
from export.web_serve import BackgroundServer
from fastst.hardware import resolve_device
from fastst.inference.stylizer import Stylizer
from fastst.modelfile import load_model

ARGS = ["--no-sandbox", "--headless", "--disable-background-networking", "--disable-component-update",
        "--no-first-run", "--disable-sync", "--disable-quic"]


def page_times(browser: object, site: Path, isolate: bool, sizes: list[int], repeats: int) -> tuple[dict, dict]:
    """{size: Stats of ms per call} in the page, and what the page ran on (backend, threads, isolation)."""
    with BackgroundServer(site, isolate=isolate) as url:
        page = browser.new_page()  # type: ignore[attr-defined]
        page.goto(url + "?backend=wasm")
        page.wait_for_function("['ready', 'error'].includes(document.body.dataset.state)", timeout=120_000)
        if page.get_attribute("body", "data-state") != "ready":
            raise SystemExit(f"the page did not load: {page.inner_text('#error')}")
        out, info = {}, {}
        for s in sizes:
            r = page.evaluate("([w, h, n]) => fastst.timeRun(w, h, n)", [s, s, repeats + 1])
            out[s] = bu.Stats.of(r["times"][1:])
            info = {k: r[k] for k in ("backend", "threads", "isolated")}
        info["label"] = page.inner_text("#backend")
        page.close()
    return out, info


def python_times(model: object, sizes: list[int], repeats: int, onnx: Path) -> dict[str, dict[int, bu.Stats]]:
    """ms per call of the network the way `fastst infer` runs it: torch at its default precision and in fp32,
    and ONNX Runtime on the page's own model file."""
    from export.runtime import OnnxModel

    rows: dict[str, dict[int, bu.Stats]] = {}
    runners = [("fastst infer (torch, default precision)", Stylizer(model, device="cpu")),
               ("fastst infer --precision fp32", Stylizer(model, device="cpu", precision="fp32")),
               ("fastst infer --backend onnx (the page's model.onnx)", Stylizer(OnnxModel(onnx), device="cpu"))]
    for label, stylizer in runners:
        if stylizer.backend == "torch":
            label = label.replace("default precision", f"default precision: {stylizer.precision}")
        weights = stylizer.style_weights(0)
        rows[label] = {}
        for s in sizes:
            x = torch.rand(1, 3, s, s)
            rows[label][s] = bu.time_calls(lambda x=x: stylizer.forward(x, weights), warmup=1,
                                           min_iters=repeats, max_iters=repeats, min_seconds=0)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="model file (.fst); default: the bundled model")
    ap.add_argument("--site", type=Path, help="an already exported page (default: export one to a temporary folder)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    ap.add_argument("--csv", type=Path, help="also write the figures here")
    args = ap.parse_args()

    from playwright.sync_api import sync_playwright

    model = load_model(args.model)
    print(f"# {bu.machine_line(resolve_device('cpu'))}")
    version = subprocess.run([args.chromium, "--version"], capture_output=True, text=True).stdout.strip()
    print(f"# browser: {version} (headless, Playwright)")
    with tempfile.TemporaryDirectory() as tmp:
        site = args.site
        if site is None:
            site = Path(tmp) / "site"
            report = write_site(model, site)
            print(f"# exported the page in {report['export_s']:.0f} s ({report['weights']} weights)")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=ARGS)
            try:
                web = [page_times(browser, site, isolate, args.sizes, args.repeats) for isolate in (True, False)]
            finally:
                browser.close()
        native = python_times(model, args.sizes, args.repeats, site / "model.onnx")
    rows = []
    for times, info in web:
        threads = f"{info['threads']} thread{'s' if info['threads'] > 1 else ''}"
        iso = "cross-origin isolated" if info["isolated"] else "not isolated"
        rows.append((f"page, WebAssembly, {threads} ({iso})", times))
    rows += list(native.items())
    print(f"\nms per frame, median [min–max] of {args.repeats} after one warm-up; "
          f"load average now {bu.os.getloadavg()[0]:.1f}\n")
    print("| runs on | " + " | ".join(f"{s}×{s}" for s in args.sizes) + " |")
    print("|---|" + "---|" * len(args.sizes))
    for label, times in rows:
        print(f"| {label} | " + " | ".join(times[s].text("{:.0f}") for s in args.sizes) + " |")
    for _, info in web:
        print(f"# page said: {info['label']}")
    if args.csv:
        bu.write_csv(args.csv, [{"runs_on": label, "size": s, "ms_median": t[s].median, "ms_min": t[s].min,
                                 "ms_max": t[s].max} for label, t in rows for s in args.sizes],
                     ["runs_on", "size", "ms_median", "ms_min", "ms_max"])


if __name__ == "__main__":
    main()
