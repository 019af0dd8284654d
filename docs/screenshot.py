"""Take docs/demo.png: start `allfuse serve` on loopback, fuse a pair in headless Chromium, screenshot.

    python docs/screenshot.py [A.png B.png] [--out docs/demo.png]

Needs `pip install -e ".[web,test]"` and Debian's chromium (Playwright drives it; it downloads nothing).
Without images it uses the first MEFB pair of ../shared/data, else the synthesized multi-exposure demo
pair. The PNG is reduced to 256 colours to stay small.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from PIL import Image

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def default_pair(folder: Path) -> list[Path]:
    """The first shared MEFB pair, else the demo pair written to `folder`."""
    from allfuse.demo import demo_pair
    from allfuse.io import find_pairs, write_image

    if (SHARED / "mef" / "MEFB").is_dir():  # both files are called 507.tif: copied under telling names
        sources = find_pairs(SHARED / "mef" / "MEFB")[0].sources
        return [
            Path(shutil.copy(p, folder / f"{n}{p.suffix}"))
            for n, p in zip(("under", "over"), sources, strict=True)
        ]
    return [
        write_image(folder / f"{n}.png", x) for n, x in zip(("under", "over"), demo_pair("mef"), strict=True)
    ]


def main() -> None:
    """Serve, drive, screenshot, quantize."""
    from playwright.sync_api import sync_playwright

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("images", nargs="*", type=Path)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "demo.png")
    args = ap.parse_args()
    chromium = os.environ.get("CHROMIUM") or shutil.which("chromium")
    with tempfile.TemporaryDirectory() as tmp, socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        pair = args.images or default_pair(Path(tmp))
        env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
        cmd = [sys.executable, "-m", "allfuse", "serve", "--host", "127.0.0.1", "--port", str(port)]
        server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            url = f"http://127.0.0.1:{port}/"
            for _ in range(360):
                try:
                    urllib.request.urlopen(url, timeout=5).close()
                    break
                except OSError:
                    time.sleep(0.5)
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": 1280, "height": 820})
                page.route(
                    "**/*",
                    lambda r: r.continue_() if r.request.url.startswith("http://127.0.0.1") else r.abort(),
                )
                page.goto(url)
                page.locator("#sources input[type=file]").set_input_files([str(p) for p in pair])
                page.locator("#sources").get_by_text(Path(pair[-1]).stem).first.wait_for()
                page.click("#fuse")
                page.locator("#status").get_by_text("Task:").wait_for(timeout=300_000)
                page.wait_for_timeout(1000)
                raw = Path(tmp) / "raw.png"
                page.screenshot(path=str(raw), full_page=True)
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=30)
        Image.open(raw).convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT).save(
            args.out, optimize=True
        )
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
