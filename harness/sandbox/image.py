"""The Docker backend's image, built without a registry when the engine runs on this host.

Two kinds, told apart by the image's `harness.sandbox.kind` label:
  * "hostpy" (offline, the default for a local engine): an image of empty directories, made with
    `docker import` in well under a second; each container mounts this host's interpreter, its standard
    library, the allowed packages and the shared libraries they link, read-only (see `host_mounts`),
    exactly like the local backend.
  * "dockerfile" (`--base python:3.11-slim`, needs a registry): a normal self-contained image with its
    own interpreter, sympy and numpy, for engines on other machines.
"""

from __future__ import annotations

import io
import os
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from harness.sandbox.guest import GUEST_DIR
from harness.sandbox.guest.host_files import LIBRARY_DIRS, interpreter_files, package_locations
from harness.sandbox.guest.jail import DEVICES

DEFAULT_IMAGE = "harness-sandbox:latest"
# The in-sandbox half of a session: the supervisor (the REPL's entry point), the worker it forks, the syscall
# filter it installs, and what removes a session's traces from its container.
SESSION_SCRIPTS = {name: GUEST_DIR / name
                   for name in ("supervisor.py", "kernel.py", "syscall_filter.py", "container_traces.py")}
SCRIPTS_IN_IMAGE = "/opt/harness"
ENTRY_IN_IMAGE = f"{SCRIPTS_IN_IMAGE}/supervisor.py"
KIND_LABEL = "harness.sandbox.kind"
PYTHON_LABEL = "harness.sandbox.python"
DOCKERFILE = """\
FROM {base}
RUN pip install --no-cache-dir {packages} && python -m compileall -q /usr/local/lib
COPY {session_scripts} {scripts}/
LABEL {kind_label}=dockerfile {python_label}=/usr/local/bin/python3
"""


@dataclass(frozen=True)
class HostMounts:
    """Read-only bind mounts (host path == container path), dirs hidden under tmpfs, and where the packages are."""

    read_only: tuple[str, ...]
    masked: tuple[str, ...]
    python: str
    sys_path: tuple[str, ...]


def host_mounts(packages: tuple[str, ...]) -> HostMounts:
    """What a hostpy container needs from this host to run its interpreter with the allowed packages: the same
    minimal set as the local backend's root (guest/host_files.py), not whole library directories."""
    try:
        package_dirs = package_locations(list(packages))
    except ImportError as exc:
        raise RuntimeError(str(exc)) from None
    sys_path = [os.path.dirname(path.rstrip("/")) for path in package_dirs]
    files = interpreter_files(package_dirs)
    return HostMounts(tuple(files.read_only), tuple(files.masked), files.interpreter, tuple(dict.fromkeys(sys_path)))


def skeleton_tar() -> bytes:
    """An image root of empty mount points plus the /lib-style symlinks of this host; no file content at all."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        def add_dir(name: str, mode: int = 0o755) -> None:
            info = tarfile.TarInfo(name.lstrip("/"))
            info.type, info.mode = tarfile.DIRTYPE, mode
            tar.addfile(info)

        for name in ("/tmp", "/proc", "/dev", "/sys", "/etc", "/opt", "/opt/harness", "/usr"):
            add_dir(name, 0o1777 if name == "/tmp" else 0o755)
        for path in LIBRARY_DIRS:
            if os.path.islink(path):
                info = tarfile.TarInfo(path.lstrip("/"))
                info.type, info.linkname = tarfile.SYMTYPE, os.readlink(path)
                tar.addfile(info)
        for name, text in (("etc/passwd", "nobody:x:65534:65534:nobody:/tmp:/nonexistent\n"),
                           ("etc/group", "nogroup:x:65534:\n")):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
        for name, script in SESSION_SCRIPTS.items():
            data = script.read_bytes()
            info = tarfile.TarInfo(f"{SCRIPTS_IN_IMAGE}/{name}".lstrip("/"))
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def dockerfile(base: str, packages: tuple[str, ...]) -> str:
    """The self-contained image's Dockerfile; its build context holds SESSION_SCRIPTS."""
    return DOCKERFILE.format(base=base, packages=" ".join(packages), session_scripts=" ".join(SESSION_SCRIPTS),
                             scripts=SCRIPTS_IN_IMAGE, kind_label=KIND_LABEL, python_label=PYTHON_LABEL)


def engine_is_local(client) -> bool:
    return client.api.base_url.startswith(("http+docker://localhost", "http+docker://localunixsocket"))


def build_image(client, tag: str = DEFAULT_IMAGE, base: str | None = None,
                packages: tuple[str, ...] = ("sympy", "mpmath", "numpy")) -> str:
    """Build the sandbox image; returns its kind. Without `base`, a local engine gets the offline hostpy image."""
    if base is None and not engine_is_local(client):
        base = "python:3.11-slim"  # a remote engine cannot see this host's interpreter
    if base is None:
        repository, _, version = tag.partition(":")
        changes = [f"LABEL {KIND_LABEL}=hostpy", f"LABEL {PYTHON_LABEL}={host_mounts(packages).python}"]
        with tempfile.NamedTemporaryFile(suffix=".tar") as tarball:
            tarball.write(skeleton_tar())
            tarball.flush()
            with open(tarball.name, "rb") as handle:
                client.api.import_image_from_data(handle.read(), repository=repository, tag=version or "latest",
                                                  changes=changes)
        return "hostpy"
    with tempfile.TemporaryDirectory() as context:
        for name, script in SESSION_SCRIPTS.items():
            Path(context, name).write_bytes(script.read_bytes())
        Path(context, "Dockerfile").write_text(dockerfile(base, packages))
        client.images.build(path=context, tag=tag, rm=True, pull=True)
    return "dockerfile"


__all__ = ["DEFAULT_IMAGE", "DEVICES", "HostMounts", "build_image", "dockerfile", "host_mounts", "skeleton_tar"]
