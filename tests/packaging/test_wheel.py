"""A normal (non-editable) install carries tasks/, baselines/ and the reference rows, and finds them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_wheel_bundles_and_finds_the_data_folders(tmp_path):
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", str(REPO), "-w", str(tmp_path / "dist")],
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr
    [wheel] = (tmp_path / "dist").glob("harness-*.whl")
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(tmp_path / "site"), str(wheel)],
                             capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr
    probe = ("from harness.resources import resource_dir; "
             "print(resource_dir('tasks')); print(sorted(p.name for p in resource_dir('tasks').glob('*.toml'))); "
             "print(sorted(p.name for p in resource_dir('baselines').glob('*.toml')))")
    result = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(tmp_path / 'site')!r}); {probe}"],
                            capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr
    where, tasks, methods = result.stdout.splitlines()
    assert where.startswith(str(tmp_path / "site")) and "_bundled" in where
    assert all(name in tasks for name in ("math500.toml", "gsm8k.toml", "aime24.toml", "aime25.toml", "amc23.toml"))
    assert all(name in methods for name in ("cot.toml", "tir.toml", "auto.toml"))
