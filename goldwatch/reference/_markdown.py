"""Small Markdown helpers shared by the generators (tables, escaping, code spans)."""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterable, Sequence

__all__ = ["anchor", "cell", "code", "header", "paragraphs", "prose", "table"]


def header(title: str, what: str) -> str:
    """The top of every generated file: a title, and where it comes from."""
    return (f"# {title}\n\n"
            f"<!-- Generated from the code by `python -m goldwatch.reference`; do not edit by hand. -->\n\n"
            f"{what} This file is generated from the code (`python -m goldwatch.reference`, or "
            "`goldwatch docs generate`); a test fails when it no longer matches. See [the index](README.md).\n")


def prose(text: str) -> str:
    """Docstring text (reStructuredText roles, double backticks) as one Markdown line."""
    # Sphinx roles: `~a.b.C` shows as `C`; `a.b.C` as itself
    text = re.sub(r":(?:mod|class|func|meth|data|attr|exc):`(~?)\.?([^`]+)`",
                  lambda m: f"`{m[2].rsplit('.', 1)[-1] if m[1] else m[2]}`", text)
    text = text.replace("``", "`")
    return " ".join(text.split())


def code(text: str) -> str:
    """An inline code span that survives backticks inside ``text``."""
    fence = "``" if "`" in text else "`"
    pad = " " if "`" in text else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def cell(text: str) -> str:
    """Text fit for one table cell: one line, pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def table(headings: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headings) + " |", "|" + "|".join("---" for _ in headings) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def anchor(title: str) -> str:
    """GitHub's anchor for a heading."""
    kept = "".join(ch for ch in title.lower() if ch.isalnum() or ch in " -_")
    return kept.replace(" ", "-")


def paragraphs(doc: str | None) -> str:
    """A docstring (click help) as Markdown: ``\\b`` paragraphs (click's "do not rewrap") become code blocks,
    anything after ``\\f`` is left out."""
    if not doc:
        return ""
    text = inspect.cleandoc(doc.split("\f", 1)[0])
    out = []
    for block in text.split("\n\n"):
        if block.startswith("\b\n") or block == "\b":
            body = block[2:] if block.startswith("\b\n") else ""
            out.append("```\n" + body.rstrip() + "\n```")
        else:
            out.append(prose(block))
    return "\n\n".join(p for p in out if p.strip()) + "\n"
