"""The CLI grammar, held over every command (goldwatch.cli._grammar says what it is), and the deprecated spellings
that keep old scripts working for one release."""

from __future__ import annotations

import inspect
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from goldwatch.cli import main
from goldwatch.cli._grammar import CONCEPTS, DeprecatedAlias, JsonOrLegacyFile
from goldwatch.reference.cli_ref import CommandDoc, walk_commands

COMMANDS = list(walk_commands(main))
LEAVES = [c for c in COMMANDS if not c.is_group]

# Commands whose output is not a result to print as JSON, and why.
NO_JSON = {
    "goldwatch completion": "prints a shell script",
    "goldwatch config show": "its output is the configuration as JSON already",
    "goldwatch demo gate": "a guided tour for a person; its reports are files (`goldwatch gate --json` is for scripts)",
    "goldwatch demo sidecar": "a guided tour for a person (`goldwatch status --json` is for scripts)",
    "goldwatch serve": "a service: it runs until SIGTERM and answers over HTTP (`goldwatch status --json`)",
}


def _options(doc: CommandDoc) -> list[click.Option]:
    return [p for p in doc.command.get_params(doc.ctx) if isinstance(p, click.Option)]


def _is_help(option: click.Option, doc: CommandDoc) -> bool:
    return option.is_eager and set(option.opts) <= set(doc.ctx.help_option_names)


def test_the_walk_reaches_every_registered_command() -> None:
    from goldwatch.cli import COMMANDS as REGISTERED

    top = {c.path.split()[1] for c in COMMANDS[1:]}
    assert top == set(REGISTERED)
    assert len(LEAVES) >= 20


@pytest.mark.parametrize("doc", LEAVES, ids=lambda d: d.path)
def test_json_is_a_flag_that_prints_on_stdout(doc: CommandDoc) -> None:
    found = [o for o in _options(doc) if "--json" in o.opts]
    if doc.path in NO_JSON:
        assert not found, f"{doc.path} has --json now: take it out of NO_JSON"
        return
    assert found, f"{doc.path} reports a result but has no --json (or add it to NO_JSON, with the reason)"
    (option,) = found
    assert option.is_flag or isinstance(option, JsonOrLegacyFile), f"{doc.path}: --json must be a flag"
    assert "stdout" in (option.help or ""), f"{doc.path}: --json's help must say it prints on stdout"


@pytest.mark.parametrize("doc", COMMANDS, ids=lambda d: d.path)
def test_one_concept_one_name(doc: CommandDoc) -> None:
    problems = []
    for option in _options(doc):
        if isinstance(option, DeprecatedAlias):
            continue
        spellings = [*option.opts, *option.secondary_opts]
        for concept in CONCEPTS:
            used = [s for s in spellings if s in concept.synonyms]
            if used:
                problems.append(f"{'/'.join(used)} is spelled {concept.option} everywhere ({concept.meaning})")
            if concept.option in spellings:
                is_flag = option.is_flag or isinstance(option, JsonOrLegacyFile)
                if is_flag != concept.flag:
                    kind = "a flag" if concept.flag else "an option taking a value"
                    problems.append(f"{concept.option} is {kind} everywhere ({concept.meaning})")
    assert not problems, f"{doc.path}: " + "; ".join(problems)


@pytest.mark.parametrize("doc", COMMANDS, ids=lambda d: d.path)
def test_every_option_is_explained_and_only_old_spellings_hide(doc: CommandDoc) -> None:
    names = {p.name for p in doc.command.get_params(doc.ctx)}
    for option in _options(doc):
        if _is_help(option, doc):
            continue
        if isinstance(option, DeprecatedAlias):
            assert option.hidden, f"{doc.path} {option.opts}: a deprecated spelling is hidden from --help"
            accepted = names | set(inspect.signature(inspect.unwrap(doc.command.callback)).parameters)
            assert option.target in accepted, f"{doc.path} {option.opts}: forwards to a parameter that is not there"
            new = option.replacement.split()[0]
            assert any(new in o.opts for o in _options(doc) if not o.hidden), f"{doc.path}: {new} does not exist"
            continue
        assert not option.hidden, f"{doc.path} {option.opts}: only deprecated spellings are hidden"
        assert option.help, f"{doc.path} {option.opts}: every option says what it does"


def test_files_are_written_by_named_options() -> None:
    """An option whose value is a file to write is --out or a report's kind; nothing else writes a file."""
    writers = {"--out", "--junit", "--markdown", "--html", "--verdict"}
    for doc in COMMANDS:
        for option in _options(doc):
            writes = isinstance(option.type, click.Path) and "write" in (option.help or "").lower()
            if isinstance(option, DeprecatedAlias) or not writes:
                continue
            assert set(option.opts) & writers, f"{doc.path} {option.opts}: a file to write is named --out or " \
                                               f"by its kind ({', '.join(sorted(writers))})"


# ------------------------------------------------------------------------------ the deprecated spellings at work


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_fingerprint_o_and_output_still_write_the_manifest(tmp_path: Path) -> None:
    artifact = tmp_path / "w.bin"
    artifact.write_bytes(b"weights")
    for spelling in ("-o", "--output"):
        target = tmp_path / f"{spelling.strip('-')}.json"
        code, out, err = _run("fingerprint", str(artifact), spelling, str(target), "--json")
        assert code == 0, err
        assert json.loads(out)["manifest"] == str(target)  # stdout is still only the JSON
        assert json.loads(target.read_text())["files"][0]["path"] == "w.bin"
        assert "fingerprint -o/--output` is deprecated" in err
        assert "use --out FILE" in err
    code, _, err = _run("fingerprint", str(artifact), "--out", str(tmp_path / "new.json"))
    assert code == 0
    assert "deprecated" not in err


def test_registry_root_and_replay_golden_keep_their_old_spellings(tmp_path: Path) -> None:
    artifact = tmp_path / "w.bin"
    artifact.write_bytes(b"weights")
    code, out, err = _run("registry", "--root", str(tmp_path / "reg"), "add", "m", str(artifact), "--json")
    assert code == 0, err
    assert json.loads(out)["version"] == "1"
    assert "`main registry --root` is deprecated" in err
    assert "--registry-root DIR" in err
    code, out, err = _run("registry", "--registry-root", str(tmp_path / "reg"), "list", "--json")
    assert (code, [v["version"] for v in json.loads(out)], err) == (0, ["1"], "")
    code, out, _ = _run("registry", "--registry-root", str(tmp_path / "reg"), "forget-host", "gone-pod", "--reason",
                        "scaled down", "--json")
    assert (code, json.loads(out)) == (0, {"host": "gone-pod", "dropped": 0})
    code, out, err = _run("registry", "--registry-root", str(tmp_path / "reg"), "check", "m", "--golden", "--json")
    assert "`main registry check --golden` is deprecated" in err
    assert "use --replay-golden" in err
    assert json.loads(out)["model"] == "m"  # parsed as the flag it was: no known-good version, so exit 1
    assert code == 1


def test_the_last_of_two_spellings_wins(tmp_path: Path) -> None:
    artifact = tmp_path / "w.bin"
    artifact.write_bytes(b"weights")
    code, _, _ = _run("fingerprint", str(artifact), "--out", str(tmp_path / "a.json"), "-o", str(tmp_path / "b.json"))
    assert code == 0
    assert (tmp_path / "b.json").exists()
    assert not (tmp_path / "a.json").exists()


def test_completion_scripts_and_answers() -> None:
    for shell in ("bash", "zsh", "fish"):
        code, out, _ = _run("completion", shell)
        assert code == 0
        assert "_GOLDWATCH_COMPLETE" in out
    env = {**os.environ, "_GOLDWATCH_COMPLETE": "bash_complete", "COMP_CWORD": "2"}

    def complete(words: str) -> list[str]:
        done = subprocess.run([sys.executable, "-c", "from goldwatch.cli import main; main(prog_name='goldwatch')"],
                              env={**env, "COMP_WORDS": words}, capture_output=True, text=True, timeout=60,
                              check=False)
        return [line.split(",", 1)[1] for line in done.stdout.splitlines()]

    assert complete("goldwatch registry ro") == ["rollback"]  # through the lazy group
    assert complete("goldwatch gate --ver") == ["--verdict"]
    assert complete("goldwatch registry --r") == ["--registry-root"]  # never the deprecated --root


def _deprecated_spellings() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for doc in COMMANDS:
        for option in _options(doc):
            if isinstance(option, DeprecatedAlias):
                found.setdefault(doc.path, set()).update(option.opts)
    return found


def test_the_docs_teach_the_current_spellings() -> None:
    """Every `goldwatch ...` command line in the README, docs/ and examples/ uses the current spellings."""
    root = Path(__file__).resolve().parents[1]
    files = [root / "README.md", *sorted((root / "docs").glob("*.md")),
             *sorted(p for p in (root / "examples").rglob("*") if p.suffix in (".yml", ".yaml", ".md", ".sh"))]
    deprecated = _deprecated_spellings()
    groups = {c.path for c in COMMANDS if c.is_group}
    known = {c.path for c in COMMANDS}
    problems = []
    for file in files:
        lines = file.read_text().replace("\\\n", " ").splitlines()
        for number, line in enumerate(lines, 1):
            for part in line.split("goldwatch ")[1:]:
                words = part.split()
                path, rest = "goldwatch", []
                for word in words:
                    if path in groups and f"{path} {word}" in known:
                        path = f"{path} {word}"
                        continue
                    if word.startswith("#") or word in ("|", "&&", ";", "`"):
                        break
                    rest.append(word.strip("`"))
                spent = {s for p, spellings in deprecated.items() if path.startswith(p) for s in spellings}
                old = [w for w in rest if w in spent]
                if path == "goldwatch gate":  # --json FILE: the old spelling of --verdict FILE
                    old += [f"--json {b}" for a, b in itertools.pairwise(rest)
                            if a == "--json" and not b.startswith("-")]
                if old:
                    problems.append(f"{file.relative_to(root)}:{number}: {path} {' '.join(old)}")
    assert not problems, "deprecated spellings in the docs:\n" + "\n".join(problems)
