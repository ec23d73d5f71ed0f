"""Render the report in headless Chromium: the page loads, every image decodes, the screenshot is not blank."""

import base64
import io
import os
import re
import shutil
import subprocess

import matplotlib.image
import pytest

from amcprune.report import write_report
from report_fixtures import make_prune_run

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def _chromium() -> str:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no chromium binary found (apt-get install chromium)")


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def _run(cmd, tmp_path):
    env = dict(os.environ, HOME=str(tmp_path))  # keep chromium's state out of the real home
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)


@pytest.mark.timeout(300)
def test_report_renders_in_headless_chromium(tmp_path):
    chromium = _chromium()
    run = make_prune_run(tmp_path / "run")  # full size: 24 classes x 26 SNRs
    html_path, _ = write_report(run)
    url = html_path.resolve().as_uri()

    dom = _run([chromium, *FLAGS, f"--user-data-dir={tmp_path / 'profile-dom'}", "--dump-dom", url], tmp_path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert "<h1>amcprune report: run</h1>" in html
    assert "Dense vs final model" in html and "Pruning trajectory" in html
    sources = re.findall(r'<img [^>]*src="([^"]*)"', html)
    assert len(sources) == 5
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        png = base64.b64decode(src.split(",", 1)[1], validate=True)
        width, height = _png_size(png)
        assert width > 100 and height > 100
        assert matplotlib.image.imread(io.BytesIO(png), format="png").std() > 0

    shot = tmp_path / "shot.png"
    result = _run(
        [chromium, *FLAGS, f"--user-data-dir={tmp_path / 'profile-shot'}", f"--screenshot={shot}",
         "--window-size=1200,3000", "--hide-scrollbars", url],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert shot.exists()
    assert _png_size(shot.read_bytes()) == (1200, 3000)
    pixels = matplotlib.image.imread(shot, format="png")
    assert pixels.std() > 0.05, "screenshot is blank"
    # The first figure is drawn: the screenshot holds pixels that are neither white nor the page greys.
    saturated = (pixels[..., :3].max(axis=-1) - pixels[..., :3].min(axis=-1)) > 0.3
    assert saturated.mean() > 0.005
    keep = os.environ.get("AMCPRUNE_REPORT_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)
