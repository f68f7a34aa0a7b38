"""The reference documentation under docs/reference/ is what the code produces, and new code follows the
conventions that put it there (config descriptions, document_metrics, document_routes)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import click
import pytest
from click.testing import CliRunner
from pydantic import BaseModel, Field

from goldwatch.reference import REGENERATE, http_ref, metrics_ref, render_reference, stale_files
from goldwatch.reference.config_ref import config_keys, undocumented_keys

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "docs" / "reference"
FIXTURE = "tests.reference.fixture_app"


def test_the_committed_reference_matches_the_code() -> None:
    stale = stale_files(REFERENCE)
    assert not stale, (
        f"docs/reference is stale ({', '.join(stale)} differ from what the code produces): regenerate it with "
        f"`{REGENERATE}` (or `goldwatch docs generate`) from the repository root, and commit the result"
    )
    assert sorted(p.name for p in REFERENCE.iterdir()) == sorted(render_reference()), \
        f"docs/reference holds files the generator does not write: remove them, or run `{REGENERATE}`"


def test_every_config_key_says_what_it_means() -> None:
    assert undocumented_keys() == [], "give these config fields a Field(description=...): they are documented " \
                                      "in docs/reference/config.md from it"


def test_every_module_with_metrics_or_routes_follows_the_convention() -> None:
    assert metrics_ref.modules_missing_hook() == [], (
        "these modules create Prometheus metrics but define no document_metrics(registry); see docs/reference/"
        "metrics.md, 'Adding metrics'")
    assert http_ref.modules_missing_hook() == [], (
        "these modules build starlette routes but define no document_routes(); see docs/reference/http.md, "
        "'Adding endpoints'")
    assert [r.path for r in http_ref.collect_routes() if not r.summary] == [], "give these endpoints a docstring"


def test_metrics_and_routes_are_collected_from_their_definitions(monkeypatch: pytest.MonkeyPatch) -> None:
    real = metrics_ref.modules_defining
    monkeypatch.setattr(metrics_ref, "modules_defining", lambda hook: [*real(hook), FIXTURE])
    monkeypatch.setattr(http_ref, "modules_defining", lambda hook: [*real(hook), FIXTURE])
    metrics = {m.name: m for m in metrics_ref.collect_metrics() if m.module == FIXTURE}
    assert {name: (m.type, m.labels) for name, m in metrics.items()} == {
        "goldwatch_fixture_checks_total": ("counter", ("model", "status")),
        "goldwatch_fixture_check_seconds": ("histogram", ("check",)),
        "goldwatch_fixture_build_info": ("info", ("version",)),
        "goldwatch_fixture_queue_events": ("gauge", ("model",)),  # a custom collector with no samples yet
    }
    row = "| `goldwatch_fixture_checks_total` | counter | `model`, `status` | Check runs |"
    assert row in metrics_ref.render_metrics()
    routes = [(r.methods, r.path, r.summary) for r in http_ref.collect_routes() if r.module == FIXTURE]
    assert routes == [(("GET",), "/livez", "The event loop answers (a liveness probe)."),
                      (("POST",), "/v1/models/{model}/rollback", "Roll MODEL back now (needs the bearer token).")]
    assert "| POST | `/v1/models/{model}/rollback` |" in http_ref.render_http()


def test_a_new_command_is_documented_without_a_change_to_the_generator(monkeypatch: pytest.MonkeyPatch) -> None:
    from goldwatch.cli import main
    from goldwatch.reference.cli_ref import render_cli

    monkeypatch.setitem(main.lazy, "zz-new", "tests.test_reference_docs:new_command")  # type: ignore[attr-defined]
    text = render_cli()
    assert "## goldwatch zz-new" in text
    assert "| `--widgets` | INTEGER (>= 1) | `3` | How many widgets. |" in text


@click.command()
@click.option("--widgets", type=click.IntRange(min=1), default=3, help="How many widgets.")
def new_command(widgets: int) -> None:
    """A command another change adds."""


def test_config_keys_walk_nested_tables_lists_and_variants() -> None:
    class Files(BaseModel):
        kind: Literal["files"] = "files"
        every_s: float = Field(60.0, gt=0, description="how often")

    class Golden(BaseModel):
        kind: Literal["golden"] = "golden"
        sets: list[str] = Field([], description="golden sets")

    class Watch(BaseModel):
        name: str = Field(description="the model")
        checks: list[Files | Golden] = Field([], description="what to run")

    class Serve(BaseModel):
        port: int = Field(8000, ge=0, le=65535, description="the port")
        probe: Files = Files(every_s=5.0)  # a table whose default is an instance: its values are the defaults
        watch: list[Watch] = Field([], description="models")

    class Top(BaseModel):
        serve: Serve = Serve()

    keys = {(k.table, k.name, k.variant): (k.type, k.default, k.constraints) for k in config_keys(Top)}
    assert keys == {
        ("[serve]", "port", ""): ("integer", "8000", ">= 0, <= 65535"),
        ("[serve.probe]", "kind", ""): ('"files"', '"files"', ""),
        ("[serve.probe]", "every_s", ""): ("float", "5.0", "> 0"),
        ("[[serve.watch]]", "name", ""): ("string", "(required)", ""),
        ("[[serve.watch.checks]]", "kind", 'kind = "files"'): ('"files"', '"files"', ""),
        ("[[serve.watch.checks]]", "every_s", 'kind = "files"'): ("float", "60.0", "> 0"),
        ("[[serve.watch.checks]]", "kind", 'kind = "golden"'): ('"golden"', '"golden"', ""),
        ("[[serve.watch.checks]]", "sets", 'kind = "golden"'): ("list of string", "[]", ""),
    }


def test_docs_generate_writes_and_checks(tmp_path: Path) -> None:
    from goldwatch.cli import main

    target = tmp_path / "reference"
    stale = CliRunner().invoke(main, ["docs", "generate", "--out", str(target), "--check"])
    assert stale.exit_code == 1
    assert "stale: README.md, cli.md" in stale.stdout
    written = CliRunner().invoke(main, ["docs", "generate", "--out", str(target), "--json"])
    assert written.exit_code == 0
    assert len(list(target.iterdir())) == len(render_reference())
    current = CliRunner().invoke(main, ["docs", "generate", "--out", str(target), "--check"])
    assert (current.exit_code, current.stdout.strip()) == (0, f"{target}: current")
