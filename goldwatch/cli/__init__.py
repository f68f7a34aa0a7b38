"""The ``goldwatch`` command line.

Subcommands live in their own modules and are imported only when invoked (or when ``--help`` lists them), so
``goldwatch --help`` stays fast and never imports torch, onnxruntime or evidently.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from goldwatch._version import __version__
from goldwatch.cli._common import AppState
from goldwatch.cli._progress import MODES, make_reporter
from goldwatch.exit_codes import ExitCode
from goldwatch.logs import configure_logging
from goldwatch.progress import reporting

__all__ = ["main"]

# command name -> "module:attribute"; each module imports its heavy dependencies inside the command body.
COMMANDS: dict[str, str] = {
    "config": "goldwatch.cli.config_cmd:config",
    "drift": "goldwatch.cli.drift:drift",
    "fingerprint": "goldwatch.cli.integrity:fingerprint",
    "verify": "goldwatch.cli.integrity:verify",
    "golden": "goldwatch.cli.golden:golden",
    "gate": "goldwatch.cli.gate:gate",
    "demo": "goldwatch.cli.demo:demo",
    "registry": "goldwatch.cli.registry:registry",
    "alert": "goldwatch.cli.alert:alert",
    "serve": "goldwatch.cli.serve:serve",
    "status": "goldwatch.cli.serve:status",
    "drill": "goldwatch.cli.recovery:drill",
    "runbook": "goldwatch.cli.recovery:runbook",
    "asset": "goldwatch.cli.recovery:asset",
    "doctor": "goldwatch.cli.doctor:doctor",
    "docs": "goldwatch.cli.docs:docs",
    "completion": "goldwatch.cli.completion:completion",
}
# Services run many checks at once, for days: their work is logged and measured, never shown as progress (one
# process-wide progress display would mix concurrent checks).
SERVICES = frozenset({"serve"})


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def __init__(self, *args: Any, lazy: dict[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy:
            module_name, attr = self.lazy[cmd_name].split(":")
            command = getattr(importlib.import_module(module_name), attr)
            if not isinstance(command, click.Command):
                raise TypeError(f"{self.lazy[cmd_name]} is not a click command")
            return command
        return super().get_command(ctx, cmd_name)


@click.group(
    cls=LazyGroup,
    lazy=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110},
)
@click.version_option(__version__, "--version", prog_name="goldwatch")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    envvar="GOLDWATCH_CONFIG",
    help="goldwatch.toml to use (default: ./goldwatch.toml if present, else built-in defaults).",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default=None,
    help="Log level (default: from the config, else info).",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default=None,
    help="text for people, json for log shippers (default: from the config, else text).",
)
@click.option(
    "--progress",
    "progress_mode",
    type=click.Choice(MODES),
    default="auto",
    show_default=True,
    envvar="GOLDWATCH_PROGRESS",
    help="Progress of long work on stderr: a bar with rate and ETA on a terminal, log lines in CI and with "
    "--log-format json (auto), or always bar / log, or off.",
)
@click.pass_context
def main(
    ctx: click.Context, config_path: str | None, log_level: str | None, log_format: str | None, progress_mode: str
) -> None:
    ctx.obj = AppState(config_path, log_level=log_level, log_format=log_format)
    # Logging is set from the flags now and again from the config when a command loads it, so that a broken
    # config still lets `goldwatch config check` report it cleanly.
    configure_logging(level=log_level or "info", fmt=log_format or "text")  # type: ignore[arg-type]
    reporter = make_reporter(progress_mode) if ctx.invoked_subcommand not in SERVICES else None
    if reporter is not None and not ctx.resilient_parsing:
        ctx.with_resource(reporting(reporter))


main.help = f"""goldwatch: model integrity and drift watchdog.

Exit codes: {ExitCode.summary()}.

Every command that reports a result prints it as JSON on stdout with --json; files are written only where a
named option says (--out, --junit, --markdown, --html, --verdict). Progress and messages go to stderr."""
