"""``[live_drift]`` in goldwatch.toml: defaults, every problem at once with its key path, the paths resolved."""

from __future__ import annotations

import pytest

from goldwatch.config import GoldwatchConfig, parse_config
from goldwatch.errors import ConfigError
from goldwatch.watchdog.live import LiveDrift


def test_an_empty_file_watches_nothing_and_a_model_entry_has_sensible_defaults() -> None:
    assert parse_config("").live_drift.models == []
    cfg = parse_config('[[live_drift.models]]\nname = "fraud"\nreference = "ref.parquet"\n').live_drift.models[0]
    assert (cfg.window_rows, cfg.min_window_rows, cfg.window_seconds) == (5000, 500, 300.0)
    assert (cfg.test, cfg.alpha, cfg.correction, cfg.min_effect, cfg.consecutive) == ("ks", 0.01, "bonferroni",
                                                                                     0.05, 2)
    assert cfg.trend == "cusum"
    assert cfg.metrics_features == []


def test_problems_are_reported_together_with_key_paths() -> None:
    text = """
[[live_drift.models]]
name = "fraud"
reference = "a.csv"
reference_golden = "g"
min_window_rows = 9000
alpha = 2
[[live_drift.models.inputs]]
name = "age"
kind = "text"
[[live_drift.models]]
name = "fraud"
colour = "blue"
"""
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="goldwatch.toml")
    message = str(info.value)
    for expected in ("live_drift.models[0].alpha", "live_drift.models[0].inputs[0].kind",
                     "live_drift.models[1].colour: unknown key"):
        assert expected in message, message
    with pytest.raises(ConfigError, match=r"min_window_rows \(9000\) exceeds window_rows.*one reference source"):
        parse_config('[[live_drift.models]]\nname = "m"\nreference = "a"\nreference_golden = "b"\n'
                     "min_window_rows = 9000\n")
    with pytest.raises(ConfigError, match="unique, repeated: a"):
        parse_config('[[live_drift.models]]\nname = "a"\n[[live_drift.models]]\nname = "b"\naliases = ["a"]\n')


def test_relative_reference_paths_are_resolved_against_the_config_directory(tmp_path) -> None:
    import pandas as pd

    pd.DataFrame({"age": range(100)}).to_csv(tmp_path / "ref.csv", index=False)
    cfg = parse_config('[[live_drift.models]]\nname = "m"\nreference = "ref.csv"\n[[live_drift.models.inputs]]\n'
                       'name = "age"\n')
    live = LiveDrift.from_config(cfg.live_drift, base_dir=tmp_path)
    assert live.monitor("m").references is not None
    assert live.monitor("m").references.get(None).source == str(tmp_path / "ref.csv")


def test_the_sidecar_refuses_references_that_are_not_there(tmp_path) -> None:
    from goldwatch.watchdog.live.sidecar import sidecar_models

    (tmp_path / "ref-v1.npz").write_bytes(b"")
    watch = {"name": "fraud", "url": "http://127.0.0.1:8080/v2/models/fraud",
             "drift": {"reference": str(tmp_path / "gone.parquet"),
                       "reference_versions": {"1": str(tmp_path / "ref-v1.npz"), "2": str(tmp_path / "v2.npz")}}}
    cfg = GoldwatchConfig.model_validate({"serve": {"watch": [watch]}})
    models, problems = sidecar_models(cfg)
    assert [m.name for m in models] == ["fraud"]
    assert len(problems) == 2
    assert "[serve.watch.drift] of 'fraud': reference " in problems[0]
    assert "gone.parquet' does not exist" in problems[0]
    assert "reference_versions.2" in problems[1]
