"""What every CLI command shares: error-to-exit-code mapping, ``--json`` output, the config.

The CLI only parses arguments, calls the library, prints, and maps outcomes to exit codes:

* 0 -- every check passed
* 1 -- a check failed (corruption, drift, regression): the result says which, with its numbers
* 2 -- usage, input or environment error: one message saying what, where, and how to fix it

The library never calls ``sys.exit``; commands return an exit code through :func:`finish`.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from goldwatch.config import GoldwatchConfig, load_config
from goldwatch.errors import GoldwatchError, from_unexpected
from goldwatch.exit_codes import ExitCode
from goldwatch.logs import configure_logging, mask_url
from goldwatch.progress import listening
from goldwatch.serialize import to_jsonable

__all__ = [
    "EXIT_ERROR",
    "EXIT_FAIL",
    "EXIT_OK",
    "AppState",
    "emit_json",
    "finish",
    "guarded",
    "json_option",
    "show_progress",
]

EXIT_OK, EXIT_FAIL, EXIT_ERROR = int(ExitCode.OK), int(ExitCode.CHECK_FAILED), int(ExitCode.ERROR)

F = TypeVar("F", bound=Callable[..., Any])


class AppState:
    """Per-invocation state put on the click context by the root group; the config is loaded on first use."""

    def __init__(
        self, config_path: str | None = None, *, log_level: str | None = None, log_format: str | None = None
    ) -> None:
        self.config_path = config_path
        self.log_level = log_level
        self.log_format = log_format
        self._config: GoldwatchConfig | None = None

    @property
    def config(self) -> GoldwatchConfig:
        if self._config is None:
            self._config = load_config(self.config_path)
            # flags win over the file
            configure_logging(
                level=self.log_level or self._config.logging.level,
                fmt=self.log_format or self._config.logging.format,  # type: ignore[arg-type]
            )
        return self._config


def state() -> AppState:
    ctx = click.get_current_context()
    obj = ctx.find_object(AppState)
    if obj is None:  # a command invoked outside the root group (e.g. in a unit test)
        obj = ctx.ensure_object(AppState)
    return obj


def guarded(func: F) -> F:
    """Map errors to one message on stderr and exit code 2; a check failure returns 1 via ``finish``.

    goldwatch's own errors carry what/where/hint; an ``OSError`` names its path; anything else is reported as an
    unexpected error (traceback only with ``--log-level debug``), never as a traceback and never as exit 1.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except GoldwatchError as err:
            click.echo(mask_url(f"goldwatch: error: {err}"), err=True)
            sys.exit(err.exit_code)
        except KeyboardInterrupt:
            click.echo("goldwatch: interrupted", err=True)
            sys.exit(int(ExitCode.INTERRUPTED))
        except (click.exceptions.Exit, click.ClickException):
            raise  # click's own usage errors and exits keep their codes and messages
        except Exception as exc:  # never a traceback for the user: one message, exit 2, traceback in debug log
            logging.getLogger("goldwatch").debug("unexpected error", exc_info=True)
            wrapped = from_unexpected(exc)
            click.echo(mask_url(f"goldwatch: error: {wrapped}"), err=True)
            sys.exit(wrapped.exit_code)

    return wrapper  # type: ignore[return-value]


json_option = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")


def emit_json(result: Any) -> None:
    click.echo(json.dumps(to_jsonable(result), indent=2, allow_nan=False))


def finish(ok: bool) -> None:
    """Exit 0 if every check passed, else 1."""
    sys.exit(EXIT_OK if ok else EXIT_FAIL)


def show_progress() -> bool:
    """True when this command's progress is shown (``--progress`` is not ``off``; see goldwatch.cli._progress)."""
    return listening()
