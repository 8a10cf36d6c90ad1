"""Make docs/web.jpg: the page `fastst export --web` writes for the bundled model, in headless Chromium,
with a bundled sample photo stylized (desktop width on the left, a 390 px phone on the right).

    python docs/web_screenshot.py [--site DIR] [--model MODEL] [--out docs/web.jpg]
"""
from __future__ import annotations

import argparse
import io
import shutil
import tempfile
from pathlib import Path

from PIL import Image

from export.web import write_site
from export.web_serve import BackgroundServer
from fastst.modelfile import load_model

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "datasets" / "samples" / "photos" / "skimage_chelsea.jpg"
ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--no-first-run",
        "--disable-sync", "--disable-quic"]


def shoot(site: Path, photo: Path, style: str, chromium: str) -> tuple[Image.Image, Image.Image]:
    """(desktop, phone) screenshots of the page once it has stylized `photo`."""
    from playwright.sync_api import sync_playwright

    shots = []
    with BackgroundServer(site) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=ARGS)
        for width, height in ((1100, 680), (390, 760)):
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(url)
            page.wait_for_function("document.body.dataset.state === 'ready'", timeout=120_000)
            page.select_option("#style", style)
            page.select_option("#size", "512")
            page.set_input_files("#file", str(photo))
            page.wait_for_function("fastst.runs > 0 && !fastst.busy", timeout=300_000)
            # once more, so that the time shown is a warm run's, not the first one's
            page.evaluate("document.getElementById('strength').dispatchEvent(new Event('input'))")
            page.wait_for_function("fastst.runs > 1 && !fastst.busy", timeout=300_000)
            page.evaluate("document.activeElement.blur()")
            shots.append(Image.open(io.BytesIO(page.screenshot())).convert("RGB"))
            page.close()
        browser.close()
    return shots[0], shots[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--site", type=Path, help="an exported page (default: export the model to a temporary folder)")
    p.add_argument("--model", help="model file (default: the bundled pretrained model)")
    p.add_argument("--style", default="the_scream")
    p.add_argument("--photo", type=Path, default=PHOTO)
    p.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "web.jpg")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        site = args.site
        if site is None:
            site = Path(tmp) / "site"
            write_site(load_model(args.model), site)
        desktop, phone = shoot(site, args.photo, args.style, args.chromium)
    gap = 16
    sheet = Image.new("RGB", (desktop.width + gap + phone.width, max(desktop.height, phone.height)), (255, 255, 255))
    sheet.paste(desktop, (0, 0))
    sheet.paste(phone, (desktop.width + gap, 0))
    sheet.save(args.out, quality=82, optimize=True)
    print(args.out)


if __name__ == "__main__":
    main()
