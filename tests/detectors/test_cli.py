"""``goldwatch drift``: exit codes 0 / 1 / 2, one-line errors, JSON output, the real console script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from goldwatch.cli import main


@pytest.fixture
def files(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    np.save(tmp_path / "ref.npy", rng.normal(size=(400, 3)))
    np.save(tmp_path / "same.npy", rng.normal(size=(300, 3)))
    shifted = rng.normal(size=(300, 3))
    shifted[:, 2] += 1.0
    np.savez(tmp_path / "shifted.npz", window=shifted)
    pd.DataFrame(rng.normal(size=(300, 2)), columns=["age", "income"]).to_csv(tmp_path / "ref.csv", index=False)
    cur = pd.DataFrame(rng.normal([0, 2], size=(200, 2)), columns=["age", "income"])
    cur.to_parquet(tmp_path / "cur.parquet")
    np.save(tmp_path / "wide.npy", np.zeros((10, 5)))
    np.savez(tmp_path / "two.npz", a=np.zeros(3), b=np.zeros(3))
    (tmp_path / "goldwatch.toml").write_text('[detectors]\ntest = "psi"\n')
    return tmp_path


def invoke(*args: str):
    return CliRunner().invoke(main, ["drift", *args])


def test_no_drift_exits_0(files) -> None:
    res = invoke(str(files / "ref.npy"), str(files / "same.npy"))
    assert res.exit_code == 0, res.output
    assert res.output.strip() == "OK  no drift in 3 feature(s) (bonferroni p < 0.05)"


def test_drift_exits_1_and_names_the_feature(files) -> None:
    res = invoke(str(files / "ref.npy"), str(files / "shifted.npz"), "--correction", "bh")
    assert res.exit_code == 1
    assert "DRIFT  drift:ks:f2" in res.output
    assert res.output.strip().endswith("1 of 3 feature(s) drifted (bh p < 0.05)")


def test_csv_against_parquet_keeps_column_names_in_json(files) -> None:
    res = invoke(str(files / "ref.csv"), str(files / "cur.parquet"), "--test", "wasserstein", "--json")
    assert res.exit_code == 1
    out = json.loads(res.output)
    assert out["drifted"] is True
    assert out["test"] == "wasserstein"
    assert [f["feature"] for f in out["features"]] == ["age", "income"]
    assert [f["drifted"] for f in out["features"]] == [False, True]


def test_min_effect_auto_and_numbers(files) -> None:
    res = invoke(str(files / "ref.npy"), str(files / "shifted.npz"), "--min-effect", "0.9", "--json")
    assert res.exit_code == 0
    assert json.loads(res.output)["min_effect"] == 0.9
    res = invoke(str(files / "ref.npy"), str(files / "shifted.npz"), "--min-effect", "auto")
    assert res.exit_code == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ref.npy", "wide.npy"], "current: expected 3 features (like reference, shape (400, 3)), got shape (10, 5)"),
        (["ref.npy", "missing.npy"], "missing.npy: file not found"),
        (["ref.npy", "two.npz"], "expected one array, found 2"),
        (["ref.npy", "goldwatch.toml"], "unsupported file type '.toml'"),
        (["ref.npy", "same.npy", "--test", "nope"], "--test: unknown test 'nope'"),
        (["ref.npy", "same.npy", "--alpha", "2"], "alpha: expected a level in (0, 1), got 2.0"),
        (["ref.npy", "same.npy", "--min-effect", "big"], "--min-effect: expected a number or 'auto', got 'big'"),
    ],
)
def test_bad_input_exits_2_with_one_line(files, args, message) -> None:
    res = CliRunner().invoke(main, ["drift", *[str(files / a) if a.endswith((".npy", ".npz", ".toml")) else a
                                                for a in args]])
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("goldwatch: error: ")
    assert message in lines[0]


def test_config_file_sets_the_default_test(files) -> None:
    res = CliRunner().invoke(
        main, ["--config", str(files / "goldwatch.toml"), "drift", str(files / "ref.npy"),
               str(files / "same.npy"), "--json"]
    )
    assert res.exit_code == 0
    assert json.loads(res.output)["test"] == "psi"


def test_console_script_subprocess(files) -> None:
    exe = Path(sys.executable).with_name("goldwatch")
    done = subprocess.run([str(exe), "drift", str(files / "ref.npy"), str(files / "shifted.npz")],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1, done.stderr
    assert "DRIFT  drift:ks:f2" in done.stdout
    done = subprocess.run([str(exe), "drift", str(files / "ref.npy"), str(files / "wide.npy")],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2
    assert done.stderr.startswith("goldwatch: error: current: expected 3 features")


def test_help_does_not_import_heavy_libraries() -> None:
    code = ("import sys; from click.testing import CliRunner; from goldwatch.cli import main; "
            "r = CliRunner().invoke(main, ['drift', '--help']); assert r.exit_code == 0, r.output; "
            "print(sorted(m for m in ('torch', 'onnxruntime', 'evidently', 'mlserver') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"


def test_key_selects_the_array_of_a_several_array_npz(files) -> None:
    rng = np.random.default_rng(7)
    ref, same = rng.normal(size=(400, 3)), rng.normal(size=(300, 3))
    shifted = rng.normal(size=(300, 3))
    shifted[:, 1] += 1.0
    np.savez(files / "ref_multi.npz", window=ref, labels=np.zeros(400))
    np.savez(files / "cur_multi.npz", window=shifted, other=same)
    res = invoke(str(files / "ref_multi.npz"), str(files / "cur_multi.npz"), "--key", "window")
    assert res.exit_code == 1, res.output
    assert "DRIFT  drift:ks:f1" in res.output
    # the same key names the array in both files; a .npy on one side ignores it
    np.savez(files / "cur_same.npz", window=same, extra=shifted)
    res = invoke(str(files / "ref.npy"), str(files / "cur_same.npz"), "--key", "window")
    assert res.exit_code == 0, res.output
    # without --key a several-array .npz is refused, pointing at --key
    res = invoke(str(files / "ref_multi.npz"), str(files / "cur_multi.npz"))
    assert res.exit_code == 2
    assert "expected one array, found 2" in res.output
    assert "--key NAME" in res.output


def test_missing_key_exits_2_listing_the_arrays_present(files) -> None:
    res = invoke(str(files / "ref.npy"), str(files / "two.npz"), "--key", "nope")
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1
    assert "two.npz: no array named 'nope' (found ['a', 'b'])" in lines[0]
    assert "name one of the arrays it holds: a, b" in lines[0]


def test_mmd_sees_a_flipped_correlation_that_per_feature_tests_miss(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    np.save(tmp_path / "ref.npy", rng.normal(size=(400, 2)))
    np.save(tmp_path / "same.npy", rng.normal(size=(400, 2)))
    np.save(tmp_path / "corr.npy", rng.multivariate_normal([0, 0], [[1.0, 0.9], [0.9, 1.0]], size=400))
    ref, corr = str(tmp_path / "ref.npy"), str(tmp_path / "corr.npy")
    assert invoke(ref, corr).exit_code == 0  # the marginals did not move: KS per feature sees nothing
    res = invoke(ref, corr, "--test", "mmd", "--permutations", "100")
    assert res.exit_code == 1, res.output
    assert res.output.startswith("DRIFT  MMD^2 ")
    assert "400 vs 400 rows, 2 features" in res.output
    same = invoke(ref, str(tmp_path / "same.npy"), "--test", "mmd", "--permutations", "100", "--json")
    assert same.exit_code == 0, same.output
    data = json.loads(same.output)
    assert (data["test"], data["drifted"], data["result"]["n_permutations"]) == ("mmd", False, 100)
    assert data["result"]["pvalue"] >= 0.05


def test_mmd_nan_rows_are_refused_or_dropped(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    np.save(tmp_path / "ref.npy", rng.normal(size=(100, 2)))
    cur = rng.normal(size=(100, 2))
    cur[[3, 7], 1] = np.nan
    np.save(tmp_path / "cur.npy", cur)
    args = [str(tmp_path / "ref.npy"), str(tmp_path / "cur.npy"), "--test", "mmd", "--permutations", "50"]
    refused = invoke(*args)
    assert refused.exit_code == 2
    assert refused.output.strip() == (
        "goldwatch: error: current: 2 row(s) with NaN/inf (fix: clean the data, or pass --nan-policy omit to drop "
        "those rows)"
    )
    dropped = invoke(*args, "--nan-policy", "omit", "--json")
    assert dropped.exit_code in (0, 1), dropped.output
    data = json.loads(dropped.output)
    assert data["dropped_rows"] == {"current": 2}
    assert data["result"]["n_current"] == 98


def test_mmd_refuses_options_it_does_not_use_and_too_few_rows(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    np.save(tmp_path / "ref.npy", rng.normal(size=(50, 2)))
    cur = rng.normal(size=(3, 2))
    cur[:2, 0] = np.nan
    np.save(tmp_path / "cur.npy", cur)
    ref, cur_path = str(tmp_path / "ref.npy"), str(tmp_path / "cur.npy")
    res = invoke(ref, ref, "--test", "mmd", "--min-effect", "auto", "--threshold", "0.1")
    assert res.exit_code == 2
    assert "--min-effect and --threshold do not apply to --test mmd" in res.output
    res = invoke(ref, cur_path, "--test", "mmd", "--nan-policy", "omit")
    assert res.exit_code == 2
    assert "current: 1 usable row(s): a two-sample test needs at least 2 a side" in res.output
    res = invoke(ref, ref, "--test", "MMD")
    assert res.exit_code == 2
    assert "unknown test 'MMD'" in res.output
    assert res.output.rstrip().endswith("wasserstein, mmd)")
