"""The host files a sandboxed interpreter needs, and nothing more: what the local jail and the Docker hostpy
image bind read-only.

That is the interpreter binary, its standard library (minus the base site-packages), the allowed packages,
and the shared libraries those actually link: the dynamic loader resolves the DT_NEEDED entries of the
interpreter, of every extension module of the standard library and of the allowed packages (`ldd`, once), and
exactly the files it names are bound, at their real directory, so /lib-style symlinks recreated in the
sandbox lead to them. Standard library only: the zygote computes this before forking any session.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass, field

LIBRARY_DIRS = ("/usr/lib", "/usr/lib64", "/usr/lib32", "/lib", "/lib64", "/lib32")
LOADER_FILES = ("/etc/ld.so.cache",)  # how the loader finds a soname that an extension dlopen()s later
LDD_TIMEOUT_S = 120


@dataclass
class HostFiles:
    read_only: list[str] = field(default_factory=list)  # bound at the same path, read-only
    masked: list[str] = field(default_factory=list)  # hidden under an empty read-only tmpfs
    symlinks: dict[str, str] = field(default_factory=dict)  # recreated as-is (/lib -> usr/lib)
    interpreter: str = ""


def interpreter_files(package_dirs: list[str]) -> HostFiles:
    """Everything a sandbox needs to run this interpreter with the given package directories (or files)."""
    files = HostFiles(symlinks={path: os.readlink(path) for path in LIBRARY_DIRS if os.path.islink(path)})
    files.interpreter = os.path.realpath(sys.executable)
    stdlib = sysconfig.get_paths()["stdlib"]
    base_site = os.path.join(stdlib, "site-packages")
    if os.path.isdir(base_site):  # the base interpreter's packages are not the allowed ones
        files.masked.append(base_site)
    covered = (stdlib + "/",)
    packages = [path for path in package_dirs if not path.startswith(covered) or path.startswith(base_site + "/")]
    elf = [files.interpreter, *extension_modules([stdlib, *packages])]
    directories = tuple(path.rstrip("/") + "/" for path in [stdlib, *packages])
    libraries = [path for path in linked_libraries(elf) if not path.startswith(directories)]
    files.read_only = list(dict.fromkeys([files.interpreter, stdlib, *packages, *libraries,
                                          *(path for path in LOADER_FILES if os.path.isfile(path))]))
    return files


def extension_modules(paths: list[str]) -> list[str]:
    """Shared objects under the given directories (a file path stands for itself)."""
    found = []
    for path in paths:
        if os.path.isfile(path):
            found += [path] if _is_shared_object(path) else []
            continue
        for root, _, names in os.walk(path):
            found += [os.path.join(root, name) for name in names if _is_shared_object(name)]
    return found


def _is_shared_object(name: str) -> bool:
    return name.endswith(".so") or ".so." in os.path.basename(name)


def linked_libraries(elf_files: list[str]) -> list[str]:
    """The shared libraries (loader included) that the dynamic loader resolves for these files, transitively."""
    ldd = shutil.which("ldd", path="/usr/bin:/bin")
    if ldd is None:
        raise OSError("ldd is not installed, so the libraries the interpreter links cannot be resolved")
    found: dict[str, None] = {}
    for start in range(0, len(elf_files), 200):  # keep each command line short
        listing = subprocess.run([ldd, *elf_files[start:start + 200]], capture_output=True, text=True,
                                 timeout=LDD_TIMEOUT_S, env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"})
        for line in listing.stdout.splitlines():
            resolved = line.split("=>", 1)[1] if "=>" in line else line
            path = resolved.split("(0x", 1)[0].strip()
            if path.startswith("/") and "(0x" in resolved and os.path.exists(path):
                found[os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))] = None
    return list(found)
