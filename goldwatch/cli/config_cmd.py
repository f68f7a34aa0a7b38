"""``goldwatch config``: validate and show the configuration."""

from __future__ import annotations

import click

from goldwatch.cli._common import emit_json, guarded, state
from goldwatch.config import load_config


@click.group()
def config() -> None:
    """Validate and show goldwatch.toml."""


@config.command("check")
@click.argument("path", required=False, type=click.Path(dir_okay=False))
@guarded
def check(path: str | None) -> None:
    """Validate PATH (default: the --config file, ./goldwatch.toml, or the defaults). Exit 2 if invalid."""
    source = path or state().config_path
    load_config(source)
    click.echo(f"{source or 'built-in defaults'}: valid")


@config.command("show")
@guarded
def show() -> None:
    """Print the effective configuration (defaults filled in) as JSON. Secrets are never part of it."""
    emit_json(state().config.model_dump(mode="json"))
