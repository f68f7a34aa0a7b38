"""The CLI's grammar in one place: how options are named, and how an old spelling keeps working for one release.

* ``--json`` is a flag: the command's result as JSON on stdout, and nothing else on stdout (messages, warnings and
  progress go to stderr).
* Files are written only where a named option says: ``--out FILE|DIR`` for a command's product, or the report's
  kind (``--junit``, ``--markdown``, ``--html``, ``--verdict`` for the gate's JSON verdict).
* One concept, one name, everywhere (:data:`CONCEPTS`): e.g. the registry directory is ``--registry-root`` for
  ``goldwatch registry`` and ``goldwatch gate`` alike, like ``$GOLDWATCH_REGISTRY_ROOT`` and ``[registry] root``.
* A renamed option keeps its old spelling for one release (:func:`deprecated_alias`): hidden from ``--help``,
  listed as deprecated in the reference, and a warning on stderr each time it is used.

``tests/test_cli_grammar.py`` walks every command and holds them to these rules.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

import click
from click.core import ParameterSource

__all__ = [
    "CONCEPTS",
    "REMOVAL",
    "REPORT_OPTIONS",
    "Concept",
    "DeprecatedAlias",
    "JsonOrLegacyFile",
    "deprecated_alias",
    "deprecation_warning",
]

F = TypeVar("F", bound=Callable[..., Any])

# The release in which the deprecated spellings go away.
REMOVAL = "goldwatch 0.3"

REPORT_OPTIONS = ("--junit", "--markdown", "--html", "--verdict")


@dataclasses.dataclass(frozen=True)
class Concept:
    """One concept's option name, and the spellings that must not be used for it (except as deprecated aliases)."""

    option: str
    meaning: str
    flag: bool = False
    synonyms: tuple[str, ...] = ()


CONCEPTS: tuple[Concept, ...] = (
    Concept("--json", "print the result as JSON on stdout", flag=True, synonyms=("-j", "--as-json", "--json-output")),
    Concept("--out", "where the command writes its product (a file or a directory)",
            synonyms=("-o", "--output", "--output-dir", "--out-dir", "--outdir", "--output-file", "--dest")),
    Concept("--verdict", "write the gate's JSON verdict to this file",
            synonyms=("--json-out", "--json-file", "--verdict-file")),
    Concept("--junit", "write a JUnit XML report to this file", synonyms=("--junit-xml", "--xml")),
    Concept("--markdown", "write a Markdown summary to this file", synonyms=("--md", "--summary")),
    Concept("--html", "write an HTML report to this file", synonyms=("--html-report",)),
    Concept("--registry-root", "the registry directory ([registry] root, $GOLDWATCH_REGISTRY_ROOT)",
            synonyms=("--registry", "--root", "--registry-dir", "--registry-path")),
    Concept("--golden", "a golden set directory (DIR@sha256:HEX pins its digest)",
            synonyms=("--golden-set", "--golden-dir", "--golden-digest")),
    Concept("--replay-golden", "also replay the linked golden sets", flag=True),
    Concept("--manifest", "an integrity manifest written by `goldwatch fingerprint`", synonyms=("--manifest-path",)),
    Concept("--config", "the goldwatch.toml to use", synonyms=("--config-file", "-c")),
    Concept("--batch-size", "samples per inference call", synonyms=("--batch", "-b")),
    Concept("--seed", "the seed of anything random", synonyms=("--random-seed",)),
    Concept("--timeout", "seconds to wait before giving up", synonyms=("--timeout-s", "--timeout-seconds")),
    Concept("--reason", "why (recorded in the audit trail)", synonyms=("--message", "-m")),
    Concept("--actor", "who (recorded in the audit trail)", synonyms=("--user", "--by")),
)


def deprecation_warning(ctx: click.Context, old: str, new: str) -> None:
    click.echo(f"goldwatch: warning: `{ctx.command_path} {old}` is deprecated and goes away in {REMOVAL}: "
               f"use {new}", err=True)


class DeprecatedAlias(click.Option):
    """An old spelling of the option whose parameter is ``target``: hidden, and it warns when used.

    It sets the target's value and marks it as given on the command line, so that the target's default does not
    replace it; when both spellings are given, the last one wins (as with any option given twice).
    """

    def __init__(self, *args: Any, target: str, replacement: str, **kwargs: Any) -> None:
        kwargs.setdefault("hidden", True)
        kwargs["expose_value"] = False
        kwargs["callback"] = self._forward
        super().__init__(*args, **kwargs)
        self.target = target
        self.replacement = replacement

    def _forward(self, ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        source = ctx.get_parameter_source(param.name or "")
        if source not in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT) or ctx.resilient_parsing:
            return value
        deprecation_warning(ctx, "/".join(self.opts), self.replacement)
        ctx.params[self.target] = value
        ctx.set_parameter_source(self.target, ParameterSource.COMMANDLINE)
        return value


def deprecated_alias(*spellings: str, target: str, replacement: str, **option_kwargs: Any) -> Callable[[F], F]:
    """Keep ``spellings`` working for parameter ``target`` (renamed to ``replacement``) for one more release.

    ``option_kwargs`` are the old option's own (``is_flag=True``, ``type=...``): it parses as it always did.
    """
    name = "deprecated_" + "_".join(s.lstrip("-").replace("-", "_") for s in spellings)
    return click.option(*spellings, name, cls=DeprecatedAlias, target=target, replacement=replacement,
                        **option_kwargs)


class JsonOrLegacyFile(click.Option):
    """``--json``, the flag, on a command whose ``--json`` used to take a file (the gate's ``--json FILE``).

    ``--json`` alone (or ``--json -``) gives ``"-"``: print on stdout. ``--json FILE`` still works for one release,
    with a warning pointing at ``replacement``; the command receives ``FILE`` converted by ``legacy_type``.
    """

    def __init__(self, *args: Any, replacement: str, legacy_type: click.ParamType, **kwargs: Any) -> None:
        kwargs.update(is_flag=False, flag_value="-", default=None, metavar="")
        super().__init__(*args, **kwargs)
        self.replacement = replacement
        self.legacy_type = legacy_type

    def process_value(self, ctx: click.Context, value: Any) -> Any:
        value = super().process_value(ctx, value)
        if value is None or value == "-" or ctx.resilient_parsing:
            return value
        deprecation_warning(ctx, "--json FILE", f"{self.replacement} FILE (and --json alone for stdout)")
        return self.legacy_type.convert(value, self, ctx)
