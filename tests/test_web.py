"""The web demo: its backend's messages, `allfuse serve`'s flag checks, and an end-to-end run in headless
Chromium (Debian's `chromium` driven by Playwright, never a browser Playwright downloads) that uploads a
shared multi-focus pair to a server the test starts on loopback and checks the fused PNG it returns."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from allfuse.cli import main
from allfuse.demo import demo_pair
from allfuse.io import find_pairs, write_image
from allfuse.web.backend import DemoBackend, DemoError

CHROMIUM = os.environ.get("CHROMIUM") or next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)


@pytest.fixture
def backend(tmp_path: Path) -> DemoBackend:
    return DemoBackend([], ["gff", "focus"], tmp_path / "out")


@pytest.fixture
def upload_pair(request: pytest.FixtureRequest, tmp_path: Path) -> list[Path]:
    """A shared multi-focus pair (Lytro), or the synthesized demo pair where ../shared is absent."""
    try:
        data = request.getfixturevalue("shared_data")
        return list(find_pairs(data / "mff" / "Lytro")[0].sources)
    except pytest.skip.Exception:
        return [
            write_image(tmp_path / f"{n}.png", x)
            for n, x in zip(("near", "far"), demo_pair("mff"), strict=True)
        ]


def test_backend_fuses_any_number_of_uploads_and_writes_a_png(backend: DemoBackend, tmp_path: Path) -> None:
    near, far = demo_pair("mff")
    paths = [write_image(tmp_path / f"{i}.png", x) for i, x in enumerate((near, far, (near + far) / 2))]
    result = backend.fuse(paths, method="focus")
    assert result.task == "mff" and result.guessed and len(result.inputs) == 3
    assert PILImage.open(result.png).size == (451, 300) == result.size
    assert result.output.dtype == np.uint8 and result.output.shape == (300, 451, 3)
    assert "Task: multi-focus (MFF)** (detected)" in result.status()


def test_backend_errors_are_one_line_and_name_only_the_upload(backend: DemoBackend, tmp_path: Path) -> None:
    x = write_image(tmp_path / "a.png", np.zeros((20, 30), np.float32))
    small = write_image(tmp_path / "b.png", np.zeros((20, 20), np.float32))
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image at all")
    for paths, kwargs, message in (
        ([x], {}, "upload at least 2 images of one scene (got 1)"),
        (None, {}, "upload at least 2 images"),
        ([x, small], {}, "b.png: size mismatch, 20x20 but a.png is 30x20"),
        ([x, bad], {}, "broken.png: not a readable image"),
        ([x, x], {"prompt": "remove the haze"}, "gff is a classical method and takes no prompt"),
        ([x, x], {"method": "bogus"}, "unknown model or method 'bogus'"),
        ([x, x], {"task": "pan"}, "unknown task 'pan'"),
    ):
        with pytest.raises(DemoError) as info:
            backend.fuse(paths, method=kwargs.pop("method", "gff"), **kwargs)
        assert str(info.value).startswith(message) and "\n" not in str(info.value)
        assert str(tmp_path) not in str(info.value)


def test_serve_flags_are_checked_before_anything_starts(capsys: pytest.CaptureFixture[str]) -> None:
    for argv, message in (
        (["--port", "0"], "--port 0: give a port in 1..65535"),
        (["--device", "bogus"], "--device bogus: not a device name"),
        (["--max-pixels", "-1"], "--max-pixels -1: give a number of pixels >= 0"),
    ):
        assert main(["serve", *argv]) == 2
        assert capsys.readouterr().err.startswith(f"allfuse: error: {message}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_up(url: str, server: subprocess.Popen, log: Path, timeout: float = 180.0) -> None:
    """Poll the server until it answers; its log in the failure when it exits or never answers."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if server.poll() is not None:
            pytest.fail(f"allfuse serve exited with {server.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"allfuse serve did not answer within {timeout:.0f} s:\n{log.read_text()}")


def test_demo_in_headless_chromium(upload_pair: list[Path], tmp_path: Path) -> None:
    pytest.importorskip("gradio", reason="the web demo needs gradio: pip install -e '.[web]'")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="the browser test needs playwright: pip install -e '.[test]'"
    )
    if CHROMIUM is None:
        pytest.skip("no Chromium to drive: apt-get install chromium (or set CHROMIUM=/path/to/chrome)")
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    log = tmp_path / "serve.log"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "GRADIO_TEMP_DIR": str(tmp_path / "gradio")}
    cmd = [sys.executable, "-m", "allfuse", "serve", "--host", "127.0.0.1", "--port", str(port)]
    with open(log, "w") as out:
        server = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        _wait_until_up(url, server, log)
        width, height = PILImage.open(upload_pair[0]).size
        _drive_demo(sync_api, url, upload_pair, (width, height), tmp_path)
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _drive_demo(sync_api, url: str, pair: list[Path], size: tuple[int, int], tmp_path: Path) -> None:
    """Upload the pair, fuse, check the status, slider and PNG; then one upload alone, for the message."""
    outside: list[str] = []

    def loopback_only(route) -> None:  # nothing may leave the machine
        if route.request.url.startswith(("http://127.0.0.1", "ws://127.0.0.1")):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.route("**/*", loopback_only)
        page.goto(url)
        page.locator("#sources input[type=file]").set_input_files([str(p) for p in pair])
        page.locator("#sources").get_by_text(pair[1].stem).first.wait_for(timeout=30_000)
        page.click("#fuse")
        page.locator("#status").get_by_text("Task:").wait_for(timeout=120_000)
        assert "Task: multi-focus (MFF) (detected)" in page.inner_text("#status")
        shown = page.locator("#slider img")
        assert shown.count() == 2
        assert shown.nth(1).evaluate("e => [e.naturalWidth, e.naturalHeight]") == list(size)
        href = page.locator("#png a").first.get_attribute("href")
        png = tmp_path / "downloaded.png"
        png.write_bytes(page.request.get(href).body())
        assert PILImage.open(png).size == size and PILImage.open(png).format == "PNG"
        page.locator("#sources button[aria-label='Clear']").click()  # an upload adds to the list
        page.locator("#sources input[type=file]").set_input_files([str(pair[0])])
        page.locator("#sources").get_by_text(pair[0].stem).first.wait_for(timeout=30_000)
        page.click("#fuse")
        page.get_by_text("upload at least 2 images of one scene (got 1)").first.wait_for(timeout=30_000)
        assert "Traceback" not in page.content()
        browser.close()
    assert not outside, f"the page asked for outside addresses: {outside}"
