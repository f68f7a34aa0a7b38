"""``goldwatch config``: validate and show the configuration."""

from __future__ import annotations

import click

from goldwatch.cli._common import emit_json, guarded, json_option, state
from goldwatch.config import load_config


@click.group()
def config() -> None:
    """Validate and show goldwatch.toml."""


@config.command("check")
@click.argument("path", required=False, type=click.Path(dir_okay=False))
@json_option
@guarded
def check(path: str | None, as_json: bool) -> None:
    """Validate PATH (default: the --config file, ./goldwatch.toml, or the defaults). Exit 2 if invalid."""
    source = path or state().config_path
    load_config(source)
    if as_json:
        emit_json({"source": source, "valid": True})
    else:
        click.echo(f"{source or 'built-in defaults'}: valid")


@config.command("show")
@guarded
def show() -> None:
    """Print the effective configuration (defaults filled in) as JSON on stdout. Secrets are never part of it."""
    emit_json(state().config.model_dump(mode="json"))
