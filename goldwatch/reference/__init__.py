"""Reference documentation generated from the code, so that it cannot go stale.

``python -m goldwatch.reference [--out DIR] [--check]`` (or ``goldwatch docs generate``) writes, under
``docs/reference/``:

* ``cli.md`` -- every command and option, walked from the click command tree
* ``config.md`` -- every ``goldwatch.toml`` key with its type, default and meaning, walked from the pydantic models
* ``metrics.md`` -- every Prometheus metric with its labels, from each module's ``document_metrics(registry)``
* ``http.md`` -- every HTTP endpoint, from each module's ``document_routes()``
* ``exit-codes.md`` -- from :class:`goldwatch.exit_codes.ExitCode`
* ``README.md`` -- the index, and the conventions new code follows to appear here

``tests/test_reference_docs.py`` fails when the committed files differ from what the code produces, naming the
command that regenerates them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from goldwatch._fs import atomic_write

__all__ = ["REGENERATE", "render_reference", "stale_files", "write_reference"]

REGENERATE = "python -m goldwatch.reference"


def _index() -> str:
    from goldwatch.reference._markdown import header

    return (header("goldwatch reference", "The reference documentation of goldwatch, generated from the code.")
            + """
| file | what | generated from |
|---|---|---|
| [cli.md](cli.md) | every command and option | the click command tree, `goldwatch.cli` |
| [config.md](config.md) | every `goldwatch.toml` key: type, default, meaning | `goldwatch.config` |
| [metrics.md](metrics.md) | every Prometheus metric and its labels | each module's `document_metrics(registry)` |
| [http.md](http.md) | every HTTP endpoint | each module's `document_routes()` |
| [exit-codes.md](exit-codes.md) | what every command exits with | `goldwatch.exit_codes.ExitCode` |

Regenerate after changing any of them: `python -m goldwatch.reference` (writes `docs/reference/`), or
`goldwatch docs generate --out docs/reference`; `--check` only compares. `tests/test_reference_docs.py` fails when
the committed files differ from the code, and when new code does not follow these conventions:

- **Commands and options**: the help text of the click command and of each option is the reference; an option that
  overrides a config key says so (`default: registry.root from the config`). Renamed options keep their old
  spelling through `goldwatch.cli._grammar.deprecated_alias` for one release.
- **Configuration keys**: every field of a config model has a `description=` (a test lists those without one); a
  section's docstring introduces its table.
- **Metrics**: a module that defines Prometheus metrics defines a top-level `document_metrics(registry)` that
  creates them in the registry it is given (or registers its collector over a small example state), starting
  nothing.
- **HTTP endpoints**: a module that builds an app's starlette routes defines a top-level `document_routes()` that
  returns them as served (full paths), built without starting a server; each endpoint has a docstring.
- **Exit codes**: `goldwatch.exit_codes.ExitCode` is the only definition; commands exit through it.
""")


def _renderers() -> dict[str, Callable[[], str]]:
    from goldwatch.reference.cli_ref import render_cli
    from goldwatch.reference.config_ref import render_config
    from goldwatch.reference.exit_codes_ref import render_exit_codes
    from goldwatch.reference.http_ref import render_http
    from goldwatch.reference.metrics_ref import render_metrics

    return {"README.md": _index, "cli.md": render_cli, "config.md": render_config, "metrics.md": render_metrics,
            "http.md": render_http, "exit-codes.md": render_exit_codes}


def render_reference() -> dict[str, str]:
    """File name -> content of every reference file, as the code stands."""
    return {name: render().rstrip("\n") + "\n" for name, render in _renderers().items()}


def stale_files(directory: str | os.PathLike[str]) -> list[str]:
    """The reference files in ``directory`` that are missing or differ from what the code produces."""
    directory = Path(directory)
    stale = []
    for name, text in render_reference().items():
        path = directory / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            stale.append(name)
    return stale


def write_reference(directory: str | os.PathLike[str]) -> list[Path]:
    """Write every reference file into ``directory`` (created if missing), each atomically."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_reference().items():
        path = directory / name
        atomic_write(path, text.encode("utf-8"))
        written.append(path)
    return written
