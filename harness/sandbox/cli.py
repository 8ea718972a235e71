"""`harness sandbox ...`: run a file in a fresh session, diagnose isolation, benchmark, build the image, clean up."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from harness.io import fail

sandbox_app = typer.Typer(help="Run model-written Python safely: local namespaces or Docker.", no_args_is_help=True)


@sandbox_app.command("run")
def run_file(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Python file to run as one cell.")],
    backend: Annotated[str, typer.Option(help="local or docker.")] = "local",
    timeout: Annotated[float | None, typer.Option(min=0.1, help="Wall-clock seconds (default: the sandbox's).")] = None,
    memory: Annotated[int | None, typer.Option(min=1, help="Memory limit in MB.")] = None,
) -> None:
    """Run FILE as one cell of a fresh session and print one JSON object; exit 0 even when the code fails."""
    from harness.sandbox import SandboxLimits, SandboxUnavailable, open_sandbox

    if backend not in ("local", "docker"):
        fail(f"--backend must be local or docker, not {backend!r}")
    limits = SandboxLimits().with_overrides(timeout_s=timeout, memory_mb=memory)
    code = file.read_text(encoding="utf-8", errors="surrogateescape")
    try:
        sandbox = open_sandbox(backend, limits)
    except SandboxUnavailable as exc:
        fail(str(exc))
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
    cells: Annotated[int, typer.Option(min=1, help="Cells per measured path.")] = 200,
    backends: Annotated[str, typer.Option(help="Comma-separated: fresh,local,local-fresh,docker-exec,docker; "
                                               "auto = all that can run.")] = "auto",
    output: Annotated[Path | None, typer.Option(help="Also write the figures as JSON here.")] = None,
) -> None:
    """Per-cell p50/p95 and cells/s of the sandboxes against a fresh python3 and a docker exec per cell."""
    from harness.sandbox.bench import format_table, run_bench

    figures = run_bench(cells=cells, paths=None if backends == "auto" else backends.split(","))
    typer.echo(format_table(figures))
    if output is not None:
        output.write_text(json.dumps(figures, indent=2))


@sandbox_app.command("build-image")
def build_image_command(
    tag: Annotated[str, typer.Option(help="Image tag.")] = "harness-sandbox:latest",
    base: Annotated[str | None, typer.Option(help="Build from this base image via a Dockerfile (needs a registry).")] = None,
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
    everything: Annotated[bool, typer.Option("--all", help="Remove all sandbox containers, not only orphans.")] = False,
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
