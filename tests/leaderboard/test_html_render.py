"""The HTML board opened in headless Chromium (Debian `chromium`): its tables and plots must render.

Skips, with the reason in the summary, only when no Chromium is installed (`make browser-up`).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app

runner = CliRunner()


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("NO CHROMIUM: the HTML rendering check did not run; install it with `make browser-up` "
                    "(scripts/install-chromium.sh)")
    return path


def headless(page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess:
    # Root in a container needs --no-sandbox; the rest keeps Chromium off the network and quiet.
    command = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}", "--hide-scrollbars",
               "--virtual-time-budget=5000", *args, page.as_uri()]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


@pytest.fixture(scope="module")
def page(runs) -> Path:
    out = runs["root"] / "render" / "board.html"
    result = runner.invoke(app, ["leaderboard", str(runs["main"]), str(runs["other"]), "--format", "html", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_tables_and_plots_render(page, tmp_path):
    dom = headless(page, tmp_path / "profile", "--dump-dom").stdout
    for table in ("main", "adaptive", "metacognition", "levels-math500"):
        assert f'<table id="{table}">' in dom
    assert len(re.findall(r"<tr class=\"measured\">", dom)) >= 5 and '<tr class="reported">' in dom
    # The page's own script marks each image the browser decoded (naturalWidth > 0).
    rendered = re.findall(r'<img id="plot-[^"]+"[^>]*data-rendered="(yes|no)"', dom)
    assert rendered == ["yes", "yes"], rendered
    assert "different task versions" in dom


def test_screenshot_shows_a_page_not_a_blank(page, tmp_path):
    from matplotlib.image import imread

    shot = tmp_path / "shot.png"
    headless(page, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1400,2200")
    pixels = imread(shot)[..., :3]
    assert pixels.shape[:2] == (2200, 1400)
    ink = (pixels.min(axis=2) < 0.5).mean()  # dark text, rules and plot lines
    colour = (pixels.max(axis=2) - pixels.min(axis=2) > 0.3).mean()  # the plots' coloured markers and lines
    assert 0.005 < ink < 0.5 and colour > 0.0005, (ink, colour)
