"""``goldwatch docs generate``: write (or check) the reference documentation generated from the code."""

from __future__ import annotations

from pathlib import Path

import click

from goldwatch.cli._common import emit_json, finish, guarded, json_option

__all__ = ["docs"]


@click.group("docs")
def docs() -> None:
    """The reference documentation generated from the code: commands, configuration, metrics, HTTP endpoints,
    exit codes."""


@docs.command("generate")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("docs/reference"),
              show_default=True, help="Folder to write the reference into.")
@click.option("--check", is_flag=True,
              help="Write nothing; exit 1 when the files in --out differ from what the code produces.")
@json_option
@guarded
def generate(out: Path, check: bool, as_json: bool) -> None:
    """Generate the reference (the same as `python -m goldwatch.reference`). With --check, exit 1 if it is stale."""
    from goldwatch.reference import stale_files, write_reference

    if check:
        stale = stale_files(out)
        if as_json:
            emit_json({"dir": str(out), "current": not stale, "stale": stale})
        elif stale:
            click.echo(f"{out}: stale: {', '.join(stale)} (run `goldwatch docs generate --out {out}`)")
        else:
            click.echo(f"{out}: current")
        finish(not stale)
    written = write_reference(out)
    if as_json:
        emit_json({"dir": str(out), "written": [str(p) for p in written]})
    else:
        click.echo(f"{out}: {len(written)} file(s) written")
