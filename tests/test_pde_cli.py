"""`dpattern pde simulate` and `dpattern pde fit` end to end."""
import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT


def dpattern(*args, cwd=None, timeout=900):
    return subprocess.run([sys.executable, "-c", "import sys; from dpattern.cli import main; sys.exit(main())", *args],
                          capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})


@pytest.mark.parametrize("model", ["gray-scott", "cahn-hilliard", "hillen-painter"])
def test_simulate_writes_trajectory_and_animation(tmp_path, model):
    r = dpattern("pde", "simulate", model, "--size", "16", "--t-end", "5", "--frames", "4", "--seed", "3",
                 "--out", str(tmp_path / "run"))
    assert r.returncode == 0, r.stderr
    z = np.load(tmp_path / "run" / "trajectory.npz")
    assert z["t"].shape == (4,) and z["u"].shape[0] == 4 and z["u"].shape[-2:] == (16, 16)
    assert np.isfinite(z["u"]).all() and float(z["dx"]) > 0
    assert (tmp_path / "run" / "animation.gif").read_bytes()[:3] == b"GIF"


def test_simulate_defaults_work_with_no_arguments(tmp_path):
    r = dpattern("pde", "simulate", "fisher-kpp", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    z = np.load(tmp_path / "runs" / "pde-simulate-fisher-kpp" / "trajectory.npz")
    assert z["u"].shape == (31, 1, 64, 64)


@pytest.mark.parametrize("args, message", [
    (["pde", "simulate", "brusselator"], "unknown model 'brusselator'"),
    (["pde", "simulate", "gray-scott", "--param", "kil=0.1"], "has no parameter 'kil'"),
    (["pde", "simulate", "gray-scott", "--param", "D_b=-0.05"], "D_b must be >= 0"),
    (["pde", "simulate", "heat", "--method", "rk4"], "--method 'rk4' is not a solver"),
    (["pde", "fit", "--model", "navier-stokes"], "unknown model"),
    (["pde", "fit", "--fit", "feed", "F"], "--fit F: gray-scott's parameters are D_a, D_b, feed, kill"),
    (["pde", "fit", "--init", "D_a=-1"], "D_a must be >= 0"),
])
def test_bad_input_is_one_line_and_creates_nothing(tmp_path, args, message):
    r = dpattern(*args, "--out", str(tmp_path / "out"))
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1 and not (tmp_path / "out").exists()


def test_fit_rejects_bad_data_files(tmp_path):
    np.savez(tmp_path / "short.npz", t=np.arange(3.0), u=np.zeros((4, 2, 8, 8)), dx=1.0)
    np.savez(tmp_path / "nan.npz", t=np.arange(4.0), u=np.full((4, 2, 8, 8), np.nan), dx=1.0)
    for name, message in (("short", "t has 3 times but u has 4 frames"), ("nan", "non-finite")):
        r = dpattern("pde", "fit", "--data", str(tmp_path / f"{name}.npz"), "--out", str(tmp_path / "out"))
        assert r.returncode == 2 and message in r.stderr, r.stderr
        assert not (tmp_path / "out").exists()


def test_default_fit_recovers_gray_scott(tmp_path):
    "The no-argument run, on a 32x32 grid to keep the test short (the 64x64 run is measured in the tutorial)."
    r = dpattern("pde", "fit", "--size", "32", "--batch", "8", "--quiet", "--out", str(tmp_path / "fit"))
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "fit" / "params.json").read_text())
    err = report["relative_error"]
    assert abs(err["feed"]) < 0.02 and abs(err["kill"]) < 0.02, err
    assert abs(err["D_a"]) < 0.05 and abs(err["D_b"]) < 0.05, err
    names = {p.name for p in (tmp_path / "fit").iterdir()}
    assert {"params.json", "comparison.png", "checkpoint_latest.dpt", "checkpoint_best.dpt", "logs"} <= names
    from dpattern.core.model import load_model
    assert load_model(tmp_path / "fit" / "checkpoint_latest.dpt").parameters() == report["fitted"]
