"""Matching the names a module gives its tensors to the names the model file (the manifest) gives them.

Exact names first. What remains is usually one prefix apart: a module wrapped by the server (``module.`` from
DistributedDataParallel, ``model.`` from a wrapper) or a file saved from a wrapper. :func:`match_names` finds the
one prefix rule -- strip a prefix from the resident name, or add one -- that matches the most remaining names, and
applies it. ``rename`` overrides the guess: a mapping of resident prefixes to file prefixes (longest first), or a
function.

>>> resident = [("module.enc.weight",), ("module.enc.bias",), ("module.head.weight", "module.emb.weight")]
>>> matches, rule = match_names(resident, {"enc.weight", "enc.bias", "emb.weight"})
>>> matches, rule
({0: 'enc.weight', 1: 'enc.bias', 2: 'emb.weight'}, "strip 'module.'")
>>> match_names([("w",)], {"model.w"}, rename={"": "model."})
({0: 'model.w'}, "rename '' -> 'model.'")
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence

__all__ = ["Rename", "match_names"]

Rename = Mapping[str, str] | Callable[[str], str]


def _renamer(rename: Rename) -> tuple[Callable[[str], str], str]:
    if callable(rename):
        return rename, f"rename by {getattr(rename, '__name__', 'function')}"
    pairs = sorted(rename.items(), key=lambda kv: -len(kv[0]))

    def apply(name: str) -> str:
        for old, new in pairs:
            if name.startswith(old):
                return new + name[len(old):]
        return name

    return apply, "; ".join(f"rename {old!r} -> {new!r}" for old, new in pairs)


def _best_rule(unmatched: Mapping[int, Sequence[str]], available: Collection[str]) -> tuple[str, str] | None:
    """The (action, prefix) that turns the most unmatched resident names into available file names."""
    votes: Counter[tuple[str, str]] = Counter()
    suffixes: dict[str, set[str]] = {}  # file-name suffix after a dot -> the prefixes in front of it
    for name in available:
        for i, ch in enumerate(name):
            if ch == ".":
                suffixes.setdefault(name[i + 1 :], set()).add(name[: i + 1])
    for names in unmatched.values():
        rules = set()
        for name in names:
            for i, ch in enumerate(name):
                if ch == "." and name[i + 1 :] in available:
                    rules.add(("strip", name[: i + 1]))
            for prefix in suffixes.get(name, ()):
                rules.add(("add", prefix))
        votes.update(rules)  # one vote per resident tensor, however many of its aliases agree
    if not votes:
        return None
    (rule, _), *_ = sorted(votes.items(), key=lambda kv: (-kv[1], len(kv[0][1]), kv[0]))
    return rule


def match_names(
    resident: Sequence[Sequence[str]], available: Collection[str], *, rename: Rename | None = None
) -> tuple[dict[int, str], str]:
    """Map each resident tensor (its index in ``resident``; each entry lists the names it is known by) to a name in
    ``available``. Returns the matches and the rule used beyond exact names (empty when none was needed)."""
    apply, rule_text = (_renamer(rename) if rename is not None else (lambda n: n, ""))
    names = {i: [apply(n) for n in aliases] for i, aliases in enumerate(resident)}
    matches: dict[int, str] = {}
    taken: set[str] = set()
    for i, aliases in names.items():
        hit = next((n for n in aliases if n in available and n not in taken), None)
        if hit is not None:
            matches[i] = hit
            taken.add(hit)
    if rename is not None:
        return matches, rule_text
    unmatched = {i: aliases for i, aliases in names.items() if i not in matches}
    left = {n for n in available if n not in taken}
    rule = _best_rule(unmatched, left) if unmatched and left else None
    if rule is None:
        return matches, ""
    action, prefix = rule
    for i, aliases in unmatched.items():
        for name in aliases:
            candidate = name[len(prefix):] if action == "strip" and name.startswith(prefix) else (
                prefix + name if action == "add" else None)
            if candidate is not None and candidate in left:
                matches[i] = candidate
                left.discard(candidate)
                break
    return matches, f"{action} {prefix!r}"
