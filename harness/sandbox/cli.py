"""`harness sandbox ...`: run a file in a fresh session, diagnose isolation, benchmark, build the image, clean up."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

sandbox_app = typer.Typer(help="Run model-written Python safely: local namespaces or Docker.", no_args_is_help=True)


def open_or_explain(get_sandbox, backend: str, limits) -> tuple[object | None, str]:
    """The sandbox, or None and why not. The exception and its traceback are dropped and collected here:
    they hold the half-built sandbox, whose close at interpreter exit would otherwise fail loudly."""
    import gc

    try:
        return get_sandbox(backend, limits=limits), ""
    except Exception as exc:  # noqa: BLE001 - any engine failure becomes one line for the user
        lines = str(exc).strip().splitlines()
        problem = f"{type(exc).__name__}: {lines[0] if lines else ''}"
    gc.collect()
    return None, problem


@sandbox_app.command("run")
def run_file(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="Python file to run as one cell."),
    backend: str = typer.Option("local", help="local or docker."),
    timeout: Optional[float] = typer.Option(None, help="Wall-clock seconds (default: the sandbox default)."),
    memory: Optional[int] = typer.Option(None, help="Memory limit in MB."),
) -> None:
    """Run FILE as one cell of a fresh session and print one JSON object; exit 0 even when the code fails."""
    from harness.io import fail
    from harness.sandbox import SandboxLimits, get_sandbox

    if backend not in ("local", "docker"):
        fail(f"--backend must be local or docker, not {backend!r}")
    limits = SandboxLimits().with_overrides(timeout_s=timeout, memory_mb=memory)
    code = file.read_text(encoding="utf-8", errors="surrogateescape")
    sandbox, problem = open_or_explain(get_sandbox, backend, limits)
    if sandbox is None:
        fail(f"the {backend} sandbox is unavailable ({problem}); see `harness sandbox doctor`")
    with sandbox:
        result = sandbox.run(code)
    payload = {"backend": backend, **result.to_dict(), "feedback": result.feedback()}
    sys.stdout.write(json.dumps(payload) + "\n")


@sandbox_app.command("doctor")
def doctor() -> None:
    """Say which isolation is available here, and why stronger isolation is not."""
    from harness.sandbox.doctor import diagnose

    report = diagnose()
    for line in report.lines:
        typer.echo(line)
    raise typer.Exit(0 if report.usable else 1)


@sandbox_app.command("bench")
def bench(
    cells: int = typer.Option(200, help="Cells per measured path."),
    backends: str = typer.Option("auto", help="Comma-separated: fresh,local,local-fresh,docker-exec,docker; auto = all that can run."),
    output: Optional[Path] = typer.Option(None, help="Also write the figures as JSON here."),
) -> None:
    """Per-cell p50/p95 and cells/s of the sandboxes against a fresh python3 and a docker exec per cell."""
    from harness.sandbox.bench import format_table, run_bench

    figures = run_bench(cells=cells, paths=None if backends == "auto" else backends.split(","))
    typer.echo(format_table(figures))
    if output is not None:
        output.write_text(json.dumps(figures, indent=2))


@sandbox_app.command("build-image")
def build_image_command(
    tag: str = typer.Option("harness-sandbox:latest", help="Image tag."),
    base: Optional[str] = typer.Option(None, help="Build from this base image with a Dockerfile (needs a registry)."),
) -> None:
    """Build the Docker sandbox image: offline from this host's interpreter, or from --base via a Dockerfile."""
    import docker

    from harness.sandbox.image import build_image

    client = docker.from_env(timeout=600)
    kind = build_image(client, tag, base=base)
    image = client.images.get(tag)
    typer.echo(f"built {tag} ({kind}, {image.attrs.get('Size', 0) / 1e6:.1f} MB, id {image.short_id})")


@sandbox_app.command("cleanup")
def cleanup(
    everything: bool = typer.Option(False, "--all", help="Remove every sandbox container, not only orphans."),
) -> None:
    """Remove sandbox containers left by harness processes that are gone (or all of them with --all)."""
    import docker

    from harness.sandbox.docker_pool import reap_containers

    try:
        client = docker.from_env(timeout=30)
        client.ping()
    except Exception as exc:  # no engine: nothing can have leaked into it
        typer.echo(f"no Docker engine answers ({exc.__class__.__name__}); nothing to clean up")
        return
    removed = reap_containers(client, everything=everything)
    typer.echo(f"removed {len(removed)} sandbox container(s)" + (": " + ", ".join(removed) if removed else ""))
