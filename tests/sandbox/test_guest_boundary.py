"""The sandbox's own side (harness/sandbox/guest/) holds to its contract: the standard library and its siblings
only, importable with nothing but the guest folder on sys.path, and a Docker image carries every sibling its
entry point needs."""

from __future__ import annotations

import ast
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from harness.sandbox.guest import GUEST_DIR
from harness.sandbox.image import SCRIPTS_IN_IMAGE, SESSION_SCRIPTS, dockerfile, skeleton_tar

GUEST_FILES = sorted(GUEST_DIR.glob("*.py"))
GUEST_MODULES = sorted(path.stem for path in GUEST_FILES if path.stem != "__init__")


def imported_names(source: str) -> list[tuple[str, int]]:
    """(top-level module, relative level) of every import statement, at any depth of the file."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(alias.name.partition(".")[0], 0) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append(((node.module or "").partition(".")[0], node.level))
    return found


def foreign_imports(source: str) -> list[str]:
    """What a guest file imports that is neither the standard library nor a sibling imported by bare name."""
    allowed = set(sys.stdlib_module_names) | set(GUEST_MODULES)
    return [("." * level) + name for name, level in imported_names(source) if level or name not in allowed]


def test_the_checker_catches_what_a_guest_must_not_import():
    source = "import os\nimport kernel\ndef late():\n    import numpy\nfrom harness.io import fail\nfrom . import jail"
    assert sorted(foreign_imports(source)) == [".", "harness", "numpy"]


def test_the_guest_folder_holds_the_sandbox_scripts():
    expected = {"kernel", "supervisor", "zygote", "jail", "syscall_filter", "session_cgroup", "container_traces"}
    assert expected <= set(GUEST_MODULES)


@pytest.mark.parametrize("path", GUEST_FILES, ids=[path.name for path in GUEST_FILES])
def test_guest_files_import_only_the_standard_library_and_each_other(path):
    assert foreign_imports(path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("module", GUEST_MODULES)
def test_each_guest_module_imports_with_only_the_guest_folder_on_sys_path(module):
    # -I -S: no site-packages, no user site, no environment; what is left is the standard library.
    probe = (f"import sys; sys.path.insert(0, {str(GUEST_DIR)!r}); import {module}; "
             "import json; print(json.dumps(sorted(name.partition('.')[0] for name in sys.modules)))")
    result = subprocess.run([sys.executable, "-I", "-S", "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    loaded = set(json.loads(result.stdout))
    assert loaded - set(sys.stdlib_module_names) - set(GUEST_MODULES) - {"__main__"} == set()


def test_the_image_carries_every_sibling_its_entry_point_imports():
    needed, pending = set(), ["supervisor"]
    while pending:
        module = pending.pop()
        needed.add(module)
        source = (GUEST_DIR / f"{module}.py").read_text(encoding="utf-8")
        pending += [name for name, _ in imported_names(source) if name in GUEST_MODULES and name not in needed]
    assert {f"{name}.py" for name in needed} <= set(SESSION_SCRIPTS)
    with tarfile.open(fileobj=io.BytesIO(skeleton_tar())) as tar:  # the hostpy image
        carried = {Path(name).name for name in tar.getnames() if name.startswith(SCRIPTS_IN_IMAGE.lstrip("/") + "/")}
    assert set(SESSION_SCRIPTS) <= carried
    text = dockerfile("python:3.11-slim", ("sympy",))
    [copy] = [line.split() for line in text.splitlines() if line.startswith("COPY")]
    assert set(SESSION_SCRIPTS) <= set(copy[1:-1]) and copy[-1] == f"{SCRIPTS_IN_IMAGE}/"  # the dockerfile image


def test_the_host_imports_only_guest_modules_that_stand_alone():
    # A guest module that imports a sibling by bare name fails outside the guest's own sys.path.
    def siblings(module: str) -> set[str]:
        source = (GUEST_DIR / f"{module}.py").read_text(encoding="utf-8")
        return {name for name, _ in imported_names(source)} & set(GUEST_MODULES)

    stand_alone = {module for module in GUEST_MODULES if not siblings(module)}
    harness_dir = GUEST_DIR.parents[1]
    imported = set()
    for path in harness_dir.rglob("*.py"):
        if GUEST_DIR not in path.parents:
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and node.module == "harness.sandbox.guest":
                    imported |= {alias.name for alias in node.names} - {"GUEST_DIR"}
                elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("harness.sandbox.guest."):
                    imported.add(node.module.rpartition(".")[2])
    assert imported and imported <= stand_alone
