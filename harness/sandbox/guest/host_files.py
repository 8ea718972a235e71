"""The host files a sandboxed interpreter needs, and nothing more: what the local jail and the Docker hostpy
image bind read-only.

That is the interpreter binary, its standard library (minus the base site-packages), the allowed packages,
and the shared libraries those actually link: the dynamic loader resolves the DT_NEEDED entries of the
interpreter, of every extension module of the standard library and of the allowed packages (`ldd`, once), and
exactly the files it names are bound, at their real directory, so /lib-style symlinks recreated in the
sandbox lead to them. Standard library only: the zygote computes this before forking any session.
"""

from __future__ import annotations

import importlib.util
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
    return PendingHostFiles(package_dirs).result()


def package_locations(names: list[str]) -> list[str]:
    """Directories (or single files) of top-level packages, plus their vendored `.libs`; nothing is imported."""
    paths = []
    for name in names:
        spec = importlib.util.find_spec(name)
        if spec is None:
            raise ImportError(f"package {name!r} is not installed in {sysconfig.get_paths()['purelib']}")
        for location in spec.submodule_search_locations or [spec.origin]:
            paths.append(location)
            vendored = location.rstrip("/") + ".libs"
            if os.path.isdir(vendored):
                paths.append(vendored)
    return paths


class PendingHostFiles:
    """Starts `ldd` at once and answers later, so the zygote can import its packages meanwhile."""

    def __init__(self, package_dirs: list[str]) -> None:
        self.files = HostFiles(symlinks={path: os.readlink(path) for path in LIBRARY_DIRS if os.path.islink(path)})
        self.files.interpreter = os.path.realpath(sys.executable)
        self.stdlib = sysconfig.get_paths()["stdlib"]
        base_site = os.path.join(self.stdlib, "site-packages")
        if os.path.isdir(base_site):  # the base interpreter's packages are not the allowed ones
            self.files.masked.append(base_site)
        self.packages = [path for path in package_dirs
                         if not path.startswith(self.stdlib + "/") or path.startswith(base_site + "/")]
        ldd = shutil.which("ldd", path="/usr/bin:/bin")
        if ldd is None:
            raise OSError("ldd is not installed, so the libraries the interpreter links cannot be resolved")
        elf = [self.files.interpreter, *extension_modules([self.stdlib, *self.packages])]
        self.listings = [subprocess.Popen([ldd, *elf[start:start + 200]], stdout=subprocess.PIPE, text=True,
                                          stderr=subprocess.DEVNULL, env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"})
                         for start in range(0, len(elf), 200)]  # keep each command line short

    def result(self) -> HostFiles:
        directories = tuple(path.rstrip("/") + "/" for path in [self.stdlib, *self.packages])
        libraries = [path for path in self._linked_libraries() if not path.startswith(directories)]
        self.files.read_only = list(dict.fromkeys([self.files.interpreter, self.stdlib, *self.packages, *libraries,
                                                   *(path for path in LOADER_FILES if os.path.isfile(path))]))
        return self.files

    def _linked_libraries(self) -> list[str]:
        """The shared libraries (loader included) the dynamic loader resolved, transitively, at their real directory."""
        found: dict[str, None] = {}
        for listing in self.listings:
            output, _ = listing.communicate(timeout=LDD_TIMEOUT_S)
            for line in output.splitlines():
                resolved = line.split("=>", 1)[1] if "=>" in line else line
                path = resolved.split("(0x", 1)[0].strip()
                if path.startswith("/") and "(0x" in resolved and os.path.exists(path):
                    found[os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))] = None
        return list(found)


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
