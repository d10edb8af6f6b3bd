"Smoke test of benchmarks/run.py: the quick run completes and writes well-formed rows (never wall-time asserts)."
import importlib.util
import json
import math

from conftest import ROOT, run_python

KEYS = {"workload", "dpattern_s", "baseline", "baseline_s", "ratio"}
BASELINES = {"cax", "exponax", "plain-jax", "rollout", "flop-floor"}


def installed(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def test_quick_run_writes_rows(tmp_path):
    out = tmp_path / "rows.json"
    r = run_python(f"import runpy, sys; sys.argv = ['run.py', '--quick', '--json', {str(out)!r}]; "
                   f"runpy.run_path({str(ROOT / 'benchmarks' / 'run.py')!r}, run_name='__main__')", timeout=600)
    rows = json.loads(out.read_text())
    assert isinstance(rows, list) and rows
    for r_ in rows:
        assert set(r_) == KEYS, r_
        assert isinstance(r_["workload"], str) and r_["workload"]
        assert r_["baseline"] in BASELINES, r_
        for k in ("dpattern_s", "baseline_s", "ratio"):
            assert isinstance(r_[k], float) and math.isfinite(r_[k]) and r_[k] > 0, r_
        assert math.isclose(r_["ratio"], r_["dpattern_s"] / r_["baseline_s"], rel_tol=1e-9), r_
    by = {(r_["workload"].split(" (")[0], r_["baseline"]) for r_ in rows}
    expected = {("NCA rollout", "plain-jax"), ("NCA training step", "plain-jax"), ("NCA training step / rollout", "rollout"),
                ("NCA rollout vs FLOP floor", "flop-floor"), ("Gray–Scott solve", "plain-jax"),
                ("Gray–Scott gradient through the solve", "plain-jax"), ("ABM Physarum step", "plain-jax"),
                ("NCA training peak RSS, GB", "plain-jax")}
    if installed("cax") and installed("flax"):
        expected |= {("NCA rollout", "cax"), ("NCA training step", "cax")}
    else:
        assert "CAX rows skipped" in r.stdout
    if installed("exponax"):
        expected |= {("Gray–Scott solve", "exponax")}
    else:
        assert "exponax row skipped" in r.stdout
    assert expected <= by, expected - by
    # the table is printed too, one line per row
    assert sum(line.startswith(("NCA", "Gray", "ABM")) for line in r.stdout.splitlines()) == len(rows)


def test_bad_option_is_an_error():
    r = run_python(f"import runpy, sys; sys.argv = ['run.py', '--only', 'nope']; "
                   f"runpy.run_path({str(ROOT / 'benchmarks' / 'run.py')!r}, run_name='__main__')", check=False)
    assert r.returncode == 2 and "invalid choice" in r.stderr


def test_nca_gradient_ablation_quick_run():
    "The ablation script checks that every variant computes dpattern's gradient, then prints one row each."
    r = run_python(f"import runpy, sys; sys.argv = ['nca_gradient.py', '--quick', '--rounds', '1', '--profile']; "
                   f"runpy.run_path({str(ROOT / 'benchmarks' / 'nca_gradient.py')!r}, run_name='__main__')",
                   timeout=600)
    names = ("dpattern (as shipped)", "masks for all steps at once", "plain dense layers", 'gradient="checkpoint"',
             'gradient="autodiff"')
    lines = {line.split("  ")[0]: line for line in r.stdout.splitlines()}
    for name in names:
        cols = lines[name].split()
        assert float(cols[-3]) > 0 and cols[-2].endswith("x") and cols[-1].endswith("x"), lines[name]
    assert float(lines["dpattern (as shipped)"].split()[-2].rstrip("x")) == 1.0
    # --profile: page faults per call, and the time of each kind of operation for both computations
    assert "minor page faults per call: rollout" in r.stdout
    kinds = {line.split()[0]: line.split() for line in r.stdout.split("time by kind of operation")[1].splitlines()[3:]
             if line.strip()}
    assert float(kinds["all"][1]) > 0 and float(kinds["all"][2]) > 0, kinds["all"]
    assert "matrix" in kinds, kinds
