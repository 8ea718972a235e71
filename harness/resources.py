"""Find the data folders that live at the top of the repo (tasks/, baselines/, leaderboards/reference/).

A wheel carries them inside the package as ``harness/_bundled/...``; an editable install or a checkout
reads them from the repo itself. Both layouts are looked up, bundled first.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    """Path of a top-level data folder such as ``"tasks"`` or ``"leaderboards/reference"``."""
    for candidate in (_PACKAGE_DIR / "_bundled" / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"harness data folder {name!r} not found; reinstall the package (pip install harness) or run from a checkout"
    )
