"""The web page `fastst export MODEL --web DIR` writes, tested in a real browser: Debian's Chromium driven
by Playwright, the page served on 127.0.0.1. Its output canvas is compared with `fastst infer` on the
same photo at the same size (one style, a two-style blend, strength 0.5, an imported fast_neural_style
head), the strength/stroke controls with the model-file spec, the fake camera, an unloadable model,
keyboard use and a phone-sized layout. Small models (width 4) keep each browser run to about a second."""
from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import synthetic_image, write_png
from export import web_runtime
from export.web import half_weights, summary, write_site
from export.web_serve import BackgroundServer
from fastst.cli import main
from fastst.images import load_image, tensor_to_pil
from fastst.modelfile import StyleInfo, StyleModel, load_model, save_model
from fastst.transformer import TransformerNet

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--no-first-run",
        "--disable-sync", "--disable-quic", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
TIMEOUT_MS = 90_000
PHOTO_SIZE = (84, 116)  # H, W: neither side a multiple of 4, under the page's size cap

pytestmark = pytest.mark.timeout(600)


def _sync_playwright() -> Any:
    """Playwright and a Chromium binary, or a skip outside CI (CI installs both, so there it fails)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip("the Python package playwright is not installed")
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            raise FileNotFoundError(CHROMIUM)
        pytest.skip("no Chromium at /usr/bin/chromium (Debian package chromium)")
    return sync_playwright


# ------------------------------------------------------------------------------------------ models

def tiny_net(num_styles: int, seed: int, output: str = "sigmoid") -> TransformerNet:
    """A width-4 network whose per-style norm rows are seeded at random, so styles differ clearly."""
    torch.manual_seed(seed)
    net = TransformerNet(num_styles=num_styles, residual_blocks=1, width=4, output=output)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for norm in net.norms():
            norm.scale.copy_(0.5 + 1.5 * torch.rand(norm.scale.shape, generator=g))
            norm.shift.copy_(torch.rand(norm.shift.shape, generator=g) - 0.5)
        if output == "clamp":
            net.out.conv.bias.add_(0.5)  # centre the clamped output, as a trained model's would be
    return net.eval()


def spec_weights(rows: list[dict], blend: dict[str, float], stroke: float | None,
                 strength: float) -> tuple[list[float], float]:
    """The controls spec, in Python: group weights split over each group's rows by stroke (rows sorted by
    style_size, piecewise linear; no stroke: the row named like the group, else the smallest), then
    strength against the identity row if there is one, else a pixel blend. Returns (row weights, share
    of the network's output in the pixels)."""
    groups: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        if row["kind"] != "identity":
            groups.setdefault(row["group"], []).append(i)
    w = [0.0] * len(rows)
    total = sum(blend.values())
    for name, weight in blend.items():
        idx = sorted(groups[name], key=lambda i: (rows[i]["style_size"] or 0, i))
        if len(idx) == 1:
            w[idx[0]] += weight / total
            continue
        named = [k for k, i in enumerate(idx) if rows[i]["name"] == name]
        x = stroke if stroke is not None else (named[0] / (len(idx) - 1) if named else 0.0)
        p = x * (len(idx) - 1)
        k = min(int(p), len(idx) - 2)
        w[idx[k]] += weight / total * (1 - (p - k))
        w[idx[k + 1]] += weight / total * (p - k)
    identity = [i for i, row in enumerate(rows) if row["kind"] == "identity"]
    if not identity:
        return w, strength
    w = [strength * x for x in w]
    w[identity[0]] += 1 - strength
    return w, 1.0


def library_weights(rows: list[dict], blend: dict[str, float], stroke: float | None,
                    strength: float) -> tuple[list[float], float] | None:
    """The same from fastst's own controls (fastst.controls.mix), where this fastst has them."""
    try:
        from fastst.controls import Row, mix
    except ImportError:
        return None
    result = mix([Row(r["name"], r["kind"], r["group"], r["style_size"], r.get("strength")) for r in rows],
                 blend, strength, stroke)
    return list(result.weights), result.pixel_blend


def controls_model() -> StyleModel:
    """A model with the controls spec's rows, given by hand: group 'waves' at two style sizes, group
    'dots' at three (its row 'dots', at 512, the one it had before the others), 'plain' at one, and an
    identity row; default strength 0.8."""
    net = tiny_net(7, seed=5)
    table = [("waves@512", "waves", 512), ("dots@256", "dots", 256), ("waves@256", "waves", 256),
             ("identity", None, None), ("plain", "plain", None), ("dots@768", "dots", 768), ("dots", "dots", 512)]
    styles = []
    for name, group, size in table:
        info = StyleInfo(name)
        info.kind = "identity" if group is None else "style"  # type: ignore[attr-defined]
        info.group = group or name  # type: ignore[attr-defined]
        info.style_size = size  # type: ignore[attr-defined]
        styles.append(info)
    model = StyleModel(net=net, styles=styles, config={})
    model.default_strength = 0.8  # type: ignore[attr-defined]
    return model


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("web")


@pytest.fixture(scope="module")
def runtime() -> Path:
    """onnxruntime-web's files, fetched with npm into the tests' private cache (npm keeps its own copy)."""
    return web_runtime.runtime_files()


@pytest.fixture(scope="module")
def tiny_file(workdir: Path) -> Path:
    """Three styles, width 4, stored in fp16 (so the page's fp16 weights are exact); one thumbnail."""
    thumb = (torch.arange(3 * 8 * 12) % 251).to(torch.uint8).reshape(3, 8, 12)
    styles = [StyleInfo("alpha", thumbnail=thumb), StyleInfo("beta"), StyleInfo("gamma")]
    return save_model(workdir / "tiny.fst", tiny_net(3, seed=0), styles, half=True)


@pytest.fixture(scope="module")
def tiny_site(workdir: Path, tiny_file: Path, runtime: Path) -> dict:
    """`fastst export tiny.fst --web DIR`, through the CLI."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(["export", str(tiny_file), "--web", str(workdir / "site")])
    return {"rc": rc, "out": out.getvalue(), "err": err.getvalue(), "dir": workdir / "site"}


@pytest.fixture(scope="module")
def photo(workdir: Path) -> Path:
    return write_png(workdir / "photo.png", synthetic_image(*PHOTO_SIZE, seed=3))


@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    with _sync_playwright()() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Any) -> Iterator[Any]:
    b = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
    yield b
    b.close()


@contextlib.contextmanager
def open_page(browser: Any, site: Path, isolate: bool = True, query: str = "",
              viewport: tuple[int, int] = (1100, 800), wait: str | None = "ready") -> Iterator[Any]:
    """The site served on 127.0.0.1 (cross-origin isolated unless told), loaded in a new page."""
    with BackgroundServer(site, isolate=isolate) as url:
        page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: None if r.url.startswith((url, "data:", "blob:")) else errors.append(r.url))
        page.goto(url + query)
        if wait:
            page.wait_for_function(f"['{wait}', 'error'].includes(document.body.dataset.state)", timeout=TIMEOUT_MS)
            assert page.get_attribute("body", "data-state") == wait, page.inner_text("#error")
        try:
            yield page
        finally:
            page.close()
        assert not errors, errors


def set_controls(page: Any, **values: Any) -> None:
    """Set controls by id and fire their input events in one task (the page then runs once, on the last state)."""
    page.evaluate("""(values) => { for (const [id, v] of Object.entries(values)) {
        const el = document.getElementById(id); el.value = String(v);
        el.dispatchEvent(new Event('input', {bubbles: true})); } }""", values)


def new_result(page: Any, action: Any) -> np.ndarray:
    """Do `action`, wait for the page's next finished run, return the output canvas as (H, W, 3) uint8."""
    runs = page.evaluate("fastst.runs")
    action()
    page.wait_for_function(f"(fastst.runs > {runs} && !fastst.busy) || document.body.dataset.state === 'error'",
                           timeout=TIMEOUT_MS)
    assert page.get_attribute("body", "data-state") == "done", page.inner_text("#error")
    return canvas(page)


def canvas(page: Any) -> np.ndarray:
    url = page.evaluate("document.getElementById('output').toDataURL('image/png')")
    data = base64.b64decode(url.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def infer(model: Path, photo: Path, out: Path, *options: str) -> np.ndarray:
    """`fastst infer` in fp32 (the page computes in fp32; bf16 would add its own rounding)."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
        rc = main(["infer", str(model), str(photo), "-o", str(out), "--precision", "fp32", "-q", *options])
    assert rc == 0, err.getvalue()
    return np.asarray(Image.open(out).convert("RGB"))


def assert_matches(got: np.ndarray, want: np.ndarray) -> None:
    """The issue's bound: mean absolute difference at most 2/255, max at most 8/255."""
    assert got.shape == want.shape
    diff = np.abs(got.astype(int) - want.astype(int))
    assert diff.mean() <= 2 and diff.max() <= 8, f"mean {diff.mean():.2f}, max {diff.max()} (of 255)"


def drop_file(page: Any, path: Path) -> None:
    """Drop a file on the picture area, as a drag from the desktop does."""
    page.evaluate("""([b64, name]) => { const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const dt = new DataTransfer(); dt.items.add(new File([bytes], name, {type: 'image/png'}));
        const drop = new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true});
        document.getElementById('stage').dispatchEvent(drop); }""",
                  [base64.b64encode(path.read_bytes()).decode(), path.name])


# ------------------------------------------------------------------------------------------ the site

def test_cli_writes_a_complete_site(tiny_site: dict, runtime: Path) -> None:
    assert tiny_site["rc"] == 0, tiny_site["err"]
    site = tiny_site["dir"]
    assert "fp16 weights" in tiny_site["out"] and "fastst serve" in tiny_site["out"]
    for name in ("index.html", "app.js", "controls.js", "style.css", "model.onnx", "model.json", "styles/0.png"):
        assert (site / name).is_file(), name
    for name in web_runtime.FILES:
        assert (site / "ort" / name).read_bytes() == (runtime / name).read_bytes()
    info = json.loads((site / "model.json").read_text())
    assert [r["name"] for r in info["rows"]] == ["alpha", "beta", "gamma"]
    assert {r["kind"] for r in info["rows"]} == {"style"} and info["default_strength"] == 1.0
    assert info["weights"] == "fp16" and info["runtime"] == f"onnxruntime-web {web_runtime.VERSION}"
    assert [p.name for p in site.parent.iterdir() if p.name.startswith(".")] == []  # no temporary folder left


def test_half_weights_store_fp16_and_compute_fp32(tmp_path: Path) -> None:
    """A conv graph: weight and bias become fp16 initializers cast back to fp32 (ONNX Runtime folds the
    casts), a scalar and a tensor out of fp16's range stay fp32; the output is the fp32 graph's with
    the weights rounded to fp16."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weight = rng.normal(size=(4, 3, 3, 3)).astype(np.float32)
    values = {"W": weight, "B": rng.normal(size=4).astype(np.float32), "S": np.array([0.5], np.float32),
              "BIG": np.array([1e5, 1.0, 1.0, 1.0], np.float32).reshape(1, 4, 1, 1)}

    def graph(v: dict[str, np.ndarray]) -> Any:
        nodes = [helper.make_node("Conv", ["x", "W", "B"], ["c"], pads=[1, 1, 1, 1]),
                 helper.make_node("Mul", ["c", "S"], ["m"]), helper.make_node("Div", ["m", "BIG"], ["y"])]
        g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])],
                              [numpy_helper.from_array(a, n) for n, a in v.items()])
        return helper.make_model(g, opset_imports=[helper.make_opsetid("", 20)])

    proto = graph(values)
    assert half_weights(proto) == 2
    kinds = {i.name: i.data_type for i in proto.graph.initializer}
    assert kinds == {"W__fp16": TensorProto.FLOAT16, "B__fp16": TensorProto.FLOAT16,
                     "S": TensorProto.FLOAT, "BIG": TensorProto.FLOAT}
    onnx.checker.check_model(proto, full_check=True)
    rounded = graph({n: a.astype(np.float16).astype(np.float32) if n in "WB" else a for n, a in values.items()})
    x = {"x": rng.random((1, 3, 8, 8), dtype=np.float32)}
    run = [ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, x)[0]
           for m in (proto, rounded)]
    assert np.allclose(run[0], run[1], atol=1e-6) and not np.allclose(run[0], 0)


@pytest.mark.parametrize("case", ["one style", "blend", "strength"])
def test_page_matches_fastst_infer(case: str, browser: Any, tiny_site: dict, tiny_file: Path, photo: Path,
                                   workdir: Path) -> None:
    options = {"one style": ["--style", "beta"], "blend": ["--style", "alpha=0.5", "--style", "gamma=0.5"],
               "strength": ["--style", "beta", "--strength", "0.5"]}[case]
    controls = {"one style": {"style": "beta", "style2": "", "strength": 1},
                "blend": {"style": "alpha", "style2": "gamma", "blend": 0.5, "strength": 1},
                "strength": {"style": "beta", "style2": "", "strength": 0.5}}[case]
    want = infer(tiny_file, photo, workdir / f"ref-{case.replace(' ', '-')}.png", *options)
    with open_page(browser, tiny_site["dir"]) as page:
        set_controls(page, size=512, **controls)
        if case == "blend":
            got = new_result(page, lambda: drop_file(page, photo))
        else:
            got = new_result(page, lambda: page.set_input_files("#file", str(photo)))
        assert page.get_attribute("#output", "aria-label").startswith(f"Stylized picture, {PHOTO_SIZE[1]}×{PHOTO_SIZE[0]} px")
    assert_matches(got, want)
    content = np.asarray(Image.open(photo).convert("RGB")).astype(int)
    assert np.abs(got.astype(int) - content).mean() > 10  # the network did something visible


def test_styles_differ_and_size_cap_applies(browser: Any, tiny_site: dict, tiny_file: Path, workdir: Path) -> None:
    big = write_png(workdir / "big.png", synthetic_image(150, 200, seed=4))
    with open_page(browser, tiny_site["dir"]) as page:
        page.select_option("#size", "512")
        alpha = new_result(page, lambda: page.set_input_files("#file", str(big)))
        beta = new_result(page, lambda: page.select_option("#style", "beta"))
        assert alpha.shape == (150, 200, 3) and np.abs(alpha.astype(int) - beta.astype(int)).mean() > 10
        small = new_result(page, lambda: page.select_option("#size", "128"))
        assert small.shape == (96, 128, 3)  # the long side capped, as --max-size 128 gives
        assert "128×96 px" in page.inner_text("#status")
        assert page.inner_text("#backend").startswith("Running on WebAssembly, 2 threads")
    want = infer(tiny_file, big, workdir / "ref-big.png", "--style", "beta", "--max-size", "128")
    assert want.shape == small.shape
    # the browser's downscaling filter is not torch's bicubic: close, not equal
    assert np.abs(small.astype(int) - want.astype(int)).mean() < 12


def test_imported_fast_neural_style_head(browser: Any, workdir: Path, runtime: Path, photo: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """pytorch/examples' network (output conv clamped, no norm) runs the same in the page. Its weights are
    fp32, and with no tolerance for fp16 rounding the export keeps them fp32 and says so."""
    path = save_model(workdir / "clamp.fst", tiny_net(1, seed=2, output="clamp"), [StyleInfo("mosaic")])
    monkeypatch.setattr("export.web.HALF_WEIGHTS_TOLERANCE", 0.0)
    report = write_site(load_model(path), workdir / "clamp-site", runtime=runtime)
    assert report["weights"] == "fp32" and report["half_error"] > 0
    assert "(over 0.0e+00: fp32 weights kept)" in summary(report)
    want = infer(path, photo, workdir / "ref-clamp.png")
    with open_page(browser, workdir / "clamp-site") as page:
        got = new_result(page, lambda: page.set_input_files("#file", str(photo)))
    assert_matches(got, want)


def test_webgpu_when_the_browser_has_it(playwright: Any, tiny_site: dict, tiny_file: Path, workdir: Path) -> None:
    """With WebGPU on (Chromium's software adapter, SwiftShader, here) the page runs on it, says so, and
    gives fastst infer's result."""
    small = write_png(workdir / "small.png", synthetic_image(36, 52, seed=6))
    want = infer(tiny_file, small, workdir / "ref-small.png", "--style", "gamma")
    gpu_browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[*ARGS, "--enable-unsafe-webgpu"])
    try:
        with open_page(gpu_browser, tiny_site["dir"]) as page:
            assert page.inner_text("#backend") == "Running on WebGPU.", page.inner_text("#backend")
            set_controls(page, style="gamma")
            got = new_result(page, lambda: page.set_input_files("#file", str(small)))
    finally:
        gpu_browser.close()
    assert_matches(got, want)


# ------------------------------------------------------------------------------------------ controls spec

def test_strength_and_stroke_follow_the_controls_spec(browser: Any, workdir: Path, runtime: Path, photo: Path) -> None:
    model = controls_model()
    write_site(model, workdir / "controls-site", runtime=runtime, verify=False)
    rows = json.loads((workdir / "controls-site" / "model.json").read_text())["rows"]
    assert [r["group"] for r in rows] == ["waves", "dots", "waves", "identity", "plain", "dots", "dots"]
    cases = [({"waves": 1}, 0.0, 1.0), ({"waves": 1}, 1.0, 0.0), ({"dots": 1}, 0.25, 0.5), ({"dots": 1}, 0.75, 1.3),
             ({"dots": 1}, 1.0, 1.5), ({"waves": 0.3, "dots": 0.7}, 0.4, 0.8), ({"plain": 2, "waves": 1}, 0.9, 1.2),
             ({"plain": 1}, 0.5, 0.0), ({"dots": 1}, None, 0.7), ({"waves": 0.5, "dots": 0.5}, None, 1.0)]
    with open_page(browser, workdir / "controls-site") as page:
        got = page.evaluate("""([rows, cases]) => cases.map(([blend, stroke, strength]) => {
            const r = FaststControls.compose(rows, blend, stroke, strength);
            return [Array.from(r.weights), r.pixelBlend]; })""", [rows, cases])
        for (blend, stroke, strength), (weights, share) in zip(cases, got):
            for reference in (spec_weights(rows, blend, stroke, strength),
                              library_weights(rows, blend, stroke, strength)):
                if reference is None:
                    continue
                assert np.allclose(weights, reference[0], atol=1e-6), (blend, stroke, strength, weights, reference)
                assert share == reference[1]
        # strength rows (two of 'dots' at size 512, the row 'dots'; one of 'waves' at 256): the page's path
        # through them is the library's
        more = rows + [{"name": "dots~0.6", "kind": "strength", "group": "dots", "style_size": 512, "strength": 0.6},
                       {"name": "dots~0.2", "kind": "strength", "group": "dots", "style_size": 512, "strength": 0.2},
                       {"name": "waves~0.5", "kind": "strength", "group": "waves", "style_size": 256, "strength": 0.5}]
        cases = [({"dots": 1}, None, s) for s in (0.1, 0.2, 0.45, 0.6, 0.9, 1.2)] + [
            ({"waves": 1, "dots": 1}, 0.3, 0.7), ({"waves": 1}, 0.0, 0.25), ({"waves": 1}, 1.0, 0.25)]
        got = page.evaluate("""([rows, cases]) => cases.map(([blend, stroke, strength]) =>
            Array.from(FaststControls.compose(rows, blend, stroke, strength).weights))""", [more, cases])
        for (blend, stroke, strength), weights in zip(cases, got):
            reference = library_weights(more, blend, stroke, strength)
            if reference is not None:
                assert np.allclose(weights, reference[0], atol=1e-6), (blend, stroke, strength, weights, reference)
        for bad in ("[rows, {waves: 1}, 1.2, 1]", "[rows, {waves: 1}, 0.5, 1.6]", "[rows, {nope: 1}, 0.5, 1]"):
            assert page.evaluate(f"(rows) => {{ try {{ FaststControls.compose(...{bad}); return 'no error'; }} "
                                 f"catch (e) {{ return e.name; }} }}", rows) == "RangeError"
        # the page: groups as styles, identity hidden, strength to 1.5 from the model's default, stroke shown
        assert page.eval_on_selector_all("#style option", "os => os.map(o => o.value)") == ["waves", "dots", "plain"]
        assert page.get_attribute("#strength", "max") == "1.5"
        assert page.input_value("#strength") == "0.8" and page.is_visible("#stroke")
        assert page.input_value("#stroke") == "0"  # 'waves' has no row named 'waves': its smallest size
        page.select_option("#style", "dots")
        assert page.input_value("#stroke") == "0.5"  # the row 'dots' is the middle of three sizes
        set_controls(page, size=512, style="dots", style2="waves", blend=0.3, strength=0.5, stroke=0.25)
        out = new_result(page, lambda: page.set_input_files("#file", str(photo)))
    weights, _ = spec_weights(rows, {"dots": 0.7, "waves": 0.3}, 0.25, 0.5)
    with torch.no_grad():
        want = model.net(load_image(photo)[None], torch.tensor([weights]))
    assert_matches(out, np.asarray(tensor_to_pil(want[0])))


def test_models_without_rows_hide_stroke_and_cap_strength(browser: Any, tiny_site: dict) -> None:
    with open_page(browser, tiny_site["dir"]) as page:
        assert page.get_attribute("#strength", "max") == "1" and page.is_hidden("#stroke")
        assert page.eval_on_selector_all("#style option", "os => os.map(o => o.value)") == ["alpha", "beta", "gamma"]
        assert page.get_attribute("#style-thumb", "src") == "styles/0.png"


# ------------------------------------------------------------------------------------------ camera, errors

def test_webcam_produces_frames_and_fps(browser: Any, tiny_site: dict, tmp_path: Path) -> None:
    with open_page(browser, tiny_site["dir"]) as page:
        set_controls(page, size=128)
        page.click("#camera")
        page.wait_for_function("fastst.frames >= 4 || document.body.dataset.state === 'error'", timeout=TIMEOUT_MS)
        assert page.get_attribute("body", "data-state") == "camera", page.inner_text("#error")
        assert page.get_attribute("#camera", "aria-pressed") == "true"
        assert re.fullmatch(r"\d+\.\d frames/s \(128×96 px\)", page.inner_text("#fps")), page.inner_text("#fps")
        assert float(page.inner_text("#fps").split()[0]) > 0
        frame = canvas(page)
        assert frame.shape == (96, 128, 3) and frame.std() > 5
        page.screenshot(path=str(tmp_path / "camera.png"))
        page.click("#camera")
        assert page.get_attribute("#camera", "aria-pressed") == "false"
        frames = page.evaluate("fastst.frames")
        page.wait_for_timeout(300)
        assert page.evaluate("fastst.frames") <= frames + 1  # at most the frame in flight


@pytest.mark.parametrize("damage", ["garbage", "unknown operator"])
def test_unloadable_model_shows_an_error(damage: str, browser: Any, tiny_site: dict, tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    site = tmp_path / "broken"
    shutil.copytree(tiny_site["dir"], site, ignore=shutil.ignore_patterns("ort"))
    (site / "ort").symlink_to(tiny_site["dir"] / "ort")
    if damage == "garbage":
        (site / "model.onnx").write_bytes(b"this is not an ONNX model\n" * 10)
    else:
        node = helper.make_node("Stylize", ["image", "style"], ["stylized"], domain="example.unknown")
        graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 16, 16]),
                                               helper.make_tensor_value_info("style", TensorProto.FLOAT, [1, 3])],
                                  [helper.make_tensor_value_info("stylized", TensorProto.FLOAT, [1, 3, 16, 16])])
        model = helper.make_model(graph, ir_version=10, opset_imports=[helper.make_opsetid("", 20),
                                                                       helper.make_opsetid("example.unknown", 1)])
        onnx.save(model, str(site / "model.onnx"))
    with open_page(browser, site, isolate=False, wait="error") as page:
        assert page.is_visible("#error")
        text = page.inner_text("#error")
        assert text.startswith("Could not load the model: ") and "\n" not in text and ".cc:" not in text, text
        if damage == "unknown operator":
            assert "example.unknown" in text or "Stylize" in text, text
        assert page.inner_text("#backend") == "The model did not load."
        assert page.is_disabled("#camera")
        page.screenshot(path=str(tmp_path / "error.png"))


def test_not_isolated_runs_one_thread_and_says_so(browser: Any, tiny_site: dict, photo: Path) -> None:
    with open_page(browser, tiny_site["dir"], isolate=False) as page:
        text = page.inner_text("#backend")
        assert "WebAssembly, 1 thread (not cross-origin isolated: serve the page with `fastst serve`" in text
        new_result(page, lambda: page.set_input_files("#file", str(photo)))


# ------------------------------------------------------------------------------------------ using it

def test_keyboard_labels_download_and_phone_layout(browser: Any, tiny_site: dict, photo: Path, tmp_path: Path) -> None:
    with open_page(browser, tiny_site["dir"]) as page:
        unlabeled = page.evaluate("""() => Array.from(document.querySelectorAll('input, select, button'))
            .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !el.textContent.trim())
            .map((el) => el.id)""")
        assert unlabeled == []
        new_result(page, lambda: page.set_input_files("#file", str(photo)))
        reached = []
        for _ in range(14):
            page.keyboard.press("Tab")
            reached.append(page.evaluate("document.activeElement.id"))
        for control in ("file", "camera", "style", "style2", "strength", "size", "download"):
            assert control in reached, reached
        page.focus("#strength")
        before = canvas(page)
        after = new_result(page, lambda: page.keyboard.press("ArrowLeft"))
        assert page.input_value("#strength") == "0.95" and not np.array_equal(before, after)
        with page.expect_download() as info:
            page.focus("#download")
            page.keyboard.press("Enter")
        saved = tmp_path / info.value.suggested_filename
        info.value.save_as(saved)
        assert saved.name == "photo_alpha.png"
        assert np.array_equal(np.asarray(Image.open(saved).convert("RGB")), after)
        page.screenshot(path=str(tmp_path / "wide.png"))
        page.set_viewport_size({"width": 390, "height": 844})
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        box = page.locator("#output").bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
        page.screenshot(path=str(tmp_path / "phone.png"), full_page=True)


# ------------------------------------------------------------------------------------------ bad input

def _cli(*argv: str) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        rc = main(["export", *argv])
    return rc, err.getvalue()


def test_bad_web_arguments_are_one_line_errors(tiny_file: Path, tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("keep me")
    (tmp_path / "afile").write_text("x")
    (tmp_path / "rt").mkdir()
    cases = [(["--web", str(tmp_path / "full")], "not empty"),
             (["--web", str(tmp_path / "afile")], "is a file"),
             (["--web", str(tmp_path / "no" / "such")], "output folder does not exist"),
             (["--web", str(tmp_path / "site"), "--web-runtime", str(tmp_path / "rt")], "ort.min.js"),
             (["--web-runtime", str(tmp_path / "rt"), "--onnx", str(tmp_path / "m.onnx")], "--web-runtime is for --web")]
    for argv, words in cases:
        rc, err = _cli(str(tiny_file), *argv)
        lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip() and "step" not in line]
        assert rc == 2 and len(lines) == 1 and lines[0].startswith("fastst: error: ") and words in lines[0], (argv, err)
    assert (tmp_path / "full" / "x.txt").read_text() == "keep me" and not (tmp_path / "site").exists()


def test_without_npm_the_error_says_what_to_do(tiny_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FASTST_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr("export.web_runtime.shutil.which", lambda name: None)
    rc, err = _cli(str(tiny_file), "--web", str(tmp_path / "site"))
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip() and "step" not in line]
    assert rc == 2 and len(lines) == 1, err
    assert "npm was not found" in lines[0] and "set --web-runtime to a folder" in lines[0], lines[0]
    assert not (tmp_path / "site").exists()


def test_runtime_folder_forms(runtime: Path, tmp_path: Path) -> None:
    dist = tmp_path / "onnxruntime-web" / "dist"
    dist.mkdir(parents=True)
    for name in web_runtime.FILES:
        (dist / name).symlink_to(runtime / name)
    assert web_runtime.runtime_files(tmp_path / "onnxruntime-web") == dist
    assert web_runtime.runtime_files(dist) == dist


def test_fastst_serve_sends_isolation_headers(tiny_site: dict, tmp_path: Path) -> None:
    import subprocess
    import sys
    import urllib.request

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                         os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "fastst", "serve", str(tiny_site["dir"]), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        match = re.search(r"at (http://localhost:\d+/) \(Ctrl-C stops\)", line)
        assert match, line + proc.stderr.read()  # type: ignore[union-attr]
        url = match.group(1).replace("localhost", "127.0.0.1")
        with urllib.request.urlopen(url) as r:
            assert r.headers["Cross-Origin-Opener-Policy"] == "same-origin"
            assert r.headers["Cross-Origin-Embedder-Policy"] == "require-corp"
            assert b'<script src="app.js">' in r.read()
        with urllib.request.urlopen(url + "ort/ort-wasm-simd-threaded.jsep.mjs") as r:
            assert r.headers["Content-Type"] == "text/javascript"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    (tmp_path / "empty").mkdir()
    bad = subprocess.run([sys.executable, "-m", "fastst", "serve", str(tmp_path / "empty")], capture_output=True,
                         text=True, env=env, timeout=120)
    assert bad.returncode == 2 and bad.stderr.startswith("fastst: error: ") and "not an exported web page" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1, bad.stderr


def test_a_full_disk_is_one_line_and_leaves_nothing(tiny_file: Path, tmp_path: Path, cli: Any) -> None:
    """--web onto a disk that fills up while the runtime files are copied (a private 512 KB tmpfs; skipped
    where such mounts are not allowed): one line naming the folder, exit 2, no folder or temporary files."""
    runtime = tmp_path / "rt"
    runtime.mkdir()
    for name in web_runtime.FILES:
        (runtime / name).write_bytes(bytes(256 << 10))  # the model and page fit, these do not
    disk = tmp_path / "disk"
    disk.mkdir()
    result = cli.run("fastst", ["export", tiny_file, "--web", disk / "site", "--web-runtime", runtime, "--no-verify"],
                     cwd=tmp_path, mounts=[{"path": str(disk), "size": "512k"}])
    if result.skipped:
        pytest.skip(f"private tmpfs mounts are not allowed here ({result.stderr.strip()})")
    lines = [line for line in result.stderr.replace("\r", "\n").splitlines() if line.strip() and "step" not in line]
    assert result.rc == 2 and len(lines) == 1, result.stderr[-2000:]
    assert lines[0] == f"fastst: error: {disk / 'site'}: cannot write the web page (No space left on device)", lines[0]
    assert result.mounted == []
