"""The command-line reference: every command and option, walked from the click command tree (through the lazy
root group, so a command added to ``goldwatch.cli.COMMANDS`` appears without a change here).

>>> from goldwatch.cli import main
>>> paths = [c.path for c in walk_commands(main)]
>>> "goldwatch registry rollback" in paths and paths[0] == "goldwatch"
True
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import click

from goldwatch.reference._markdown import anchor, code, header, paragraphs, table

__all__ = ["CommandDoc", "describe_type", "render_cli", "walk_commands"]


@dataclasses.dataclass(frozen=True)
class CommandDoc:
    """One command of the tree with the context it would run in (for metavars and defaults)."""

    path: str
    command: click.Command
    ctx: click.Context

    @property
    def is_group(self) -> bool:
        return isinstance(self.command, click.Group)


def walk_commands(root: click.Command, name: str = "goldwatch") -> Iterator[CommandDoc]:
    """``root`` and every command below it, depth first in alphabetical order; hidden commands are left out."""

    def visit(cmd: click.Command, ctx: click.Context, path: str) -> Iterator[CommandDoc]:
        yield CommandDoc(path, cmd, ctx)
        if isinstance(cmd, click.Group):
            for sub_name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, sub_name)
                if sub is None or sub.hidden:
                    continue
                sub_ctx = click.Context(sub, info_name=sub_name, parent=ctx, **sub.context_settings)
                yield from visit(sub, sub_ctx, f"{path} {sub_name}")

    yield from visit(root, click.Context(root, info_name=name, **root.context_settings), name)


def _range(kind: Any) -> str:
    parts = []
    if getattr(kind, "min", None) is not None:
        parts.append(f"{'>' if kind.min_open else '>='} {kind.min}")
    if getattr(kind, "max", None) is not None:
        parts.append(f"{'<' if kind.max_open else '<='} {kind.max}")
    return ", ".join(parts)


def describe_type(param: click.Parameter, ctx: click.Context) -> str:
    """What the parameter takes, for a person: ``FILE``, ``a|b``, ``FLOAT (>= 0)``, ``flag``..."""
    from goldwatch.cli._grammar import JsonOrLegacyFile

    if isinstance(param, click.Option) and (param.is_flag or isinstance(param, JsonOrLegacyFile)):
        return "flag"
    kind = param.type
    if isinstance(kind, click.Choice):
        text = "|".join(str(c) for c in kind.choices)
    elif isinstance(param, click.Option) and param.metavar:
        text = param.metavar
    elif isinstance(kind, click.Path):
        text = "FILE" if not kind.dir_okay else "DIR" if not kind.file_okay else "PATH"
    elif isinstance(kind, (click.IntRange, click.FloatRange)):
        text = f"{kind.name.upper().replace(' RANGE', '')} ({_range(kind)})"
    else:
        text = kind.name.upper()
    if isinstance(param, click.Option) and param.multiple:
        text += ", repeatable"
    return text


def _default(param: click.Option, ctx: click.Context) -> str:
    if param.is_flag and not param.secondary_opts:
        return ""
    value = param.get_default(ctx, call=False)
    if value is None or value == () or callable(value) or type(value).__name__ == "Sentinel":  # click's UNSET
        return ""
    if isinstance(value, bool):
        return (param.opts[0] if value else param.secondary_opts[0]) if param.secondary_opts else str(value).lower()
    return json.dumps(value) if isinstance(value, str) else str(value)


def _is_help_option(param: click.Parameter, ctx: click.Context) -> bool:
    return param.is_eager and bool(param.opts) and set(param.opts) <= set(ctx.help_option_names)


def _options(cmd: click.Command, ctx: click.Context) -> tuple[list[list[str]], list[tuple[str, str]]]:
    from goldwatch.cli._grammar import DeprecatedAlias, JsonOrLegacyFile

    rows, deprecated = [], []
    for param in cmd.get_params(ctx):
        if not isinstance(param, click.Option):
            continue
        if isinstance(param, DeprecatedAlias):
            deprecated.append(("/".join(param.opts), param.replacement))
            continue
        if param.hidden or _is_help_option(param, ctx):
            continue
        if isinstance(param, JsonOrLegacyFile):
            deprecated.append((f"{param.opts[0]} FILE", f"{param.replacement} FILE"))
        names = ", ".join(code(o) for o in [*param.opts, *param.secondary_opts])
        help_text = param.help or ""
        if param.envvar:
            envs = [param.envvar] if isinstance(param.envvar, str) else list(param.envvar)
            help_text += " (env: " + ", ".join(f"${e}" for e in envs) + ")"
        if param.required:
            help_text = "Required. " + help_text
        rows.append([names, describe_type(param, ctx), code(_default(param, ctx)) if _default(param, ctx) else "",
                     help_text])
    return rows, deprecated


def _usage(doc: CommandDoc) -> str:
    pieces = [doc.path]
    if any(isinstance(p, click.Option) and not p.hidden for p in doc.command.get_params(doc.ctx)):
        pieces.append("[OPTIONS]")
    for param in doc.command.get_params(doc.ctx):
        if isinstance(param, click.Argument):
            pieces.append(param.make_metavar(doc.ctx))
    if doc.is_group:
        pieces.append("COMMAND [ARGS]...")
    return " ".join(pieces)


def _short(cmd: click.Command) -> str:
    return cmd.get_short_help_str(limit=200)


def render_cli() -> str:
    from goldwatch.cli import main
    from goldwatch.cli._grammar import REMOVAL

    docs = list(walk_commands(main))
    out = [header("Command-line reference",
                  "Every `goldwatch` command and option. The grammar: `--json` prints the result as JSON on stdout "
                  "(and nothing else goes to stdout); files are written only where a named option says (`--out`, "
                  "or the report's kind: `--junit`, `--markdown`, `--html`, `--verdict`); one concept has one "
                  "name everywhere. Exit codes are the same for every command ([exit codes](exit-codes.md)). Shell "
                  "completion: `goldwatch completion bash|zsh|fish`.")]
    out.append("\n## Commands\n\n")
    for doc in docs[1:]:
        if doc.is_group:
            continue
        out.append(f"- [{doc.path}](#{anchor(doc.path)}): {_short(doc.command)}\n")
    all_deprecated: list[tuple[str, str, str]] = []
    for doc in docs:
        title = doc.path if doc.path != "goldwatch" else "goldwatch (global options)"
        out.append(f"\n## {title}\n\n")
        out.append(f"```\n{_usage(doc)}\n```\n\n")
        out.append(paragraphs(doc.command.help))
        rows, deprecated = _options(doc.command, doc.ctx)
        if rows:
            out.append("\n" + table(["option", "value", "default", "meaning"], rows))
        if doc.is_group:
            subs = [(n, c) for n in doc.command.list_commands(doc.ctx)  # type: ignore[attr-defined]
                    if (c := doc.command.get_command(doc.ctx, n)) is not None and not c.hidden]  # type: ignore[attr-defined]
            out.append("\n" + table(["command", "what it does"],
                                    [[f"[{n}](#{anchor(f'{doc.path} {n}')})", _short(c)] for n, c in subs]))
        if deprecated:
            out.append("\nDeprecated spellings, still accepted until " + REMOVAL + " with a warning on stderr: "
                       + "; ".join(f"{code(old)} (use {code(new)})" for old, new in deprecated) + ".\n")
            all_deprecated += [(doc.path, old, new) for old, new in deprecated]
    if all_deprecated:
        out.append(f"\n## Deprecated spellings\n\nStill accepted until {REMOVAL}, hidden from `--help`, each use "
                   "warns on stderr.\n\n")
        out.append(table(["command", "old spelling", "use instead"],
                         [[code(p), code(o), code(n)] for p, o, n in all_deprecated]))
    return "".join(out)
