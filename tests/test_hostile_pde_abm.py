"""Hostile and careless input to `pde simulate|fit` and `abm simulate|train`, through the real command line:
exit code 2, no traceback, a message naming the flag or file, and nothing new or half-written on disk."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT


def dpattern(*args, cwd, timeout=900):
    return subprocess.run([sys.executable, "-c", "import sys; from dpattern.cli import main; sys.exit(main())", *args],
                          capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def snapshot(folder):
    "Every path under `folder` with its size: what a refused command must leave exactly as it was."
    return sorted((str(p.relative_to(folder)), p.stat().st_size if p.is_file() else -1) for p in folder.rglob("*"))


def make_inputs(d):
    (d / "afile").write_text("not a directory")
    t, u = np.arange(4.0), np.random.default_rng(0).random((4, 1, 8, 8))
    np.savez(d / "ok.npz", t=t, u=u, dx=1.0)
    np.savez(d / "dx_string.npz", t=t, u=u, dx=np.array("one"))
    np.savez(d / "meta_list.npz", t=t, u=u, dx=1.0, metadata=np.array("[1, 2]"))
    np.savez(d / "complex.npz", t=t, u=u + 1j, dx=1.0)
    (d / "truncated.npz").write_bytes((d / "ok.npz").read_bytes()[:100])
    Image.new("RGBA", (40, 40), (0, 0, 0, 0)).save(d / "blank.png")


PDE_SIM = ["pde", "simulate", "heat", "--size", "8"]
FIT = ["pde", "fit", "--model", "heat"]
ABM_SIM = ["abm", "simulate", "physarum", "--agents", "16", "--size", "8", "--steps", "4"]
ABM_TRAIN = ["abm", "train", "--agents", "8", "--size", "16", "--steps", "4", "--batch", "1", "--hidden", "4"]

# (arguments, fragment of the last stderr line, argparse's own error: usage lines come first)
CASES = {
    "pde-simulate-out-under-a-file": ([*PDE_SIM, "--out", "{d}/afile/sub"], "afile is a file", False),
    "pde-simulate-out-is-a-file": ([*PDE_SIM, "--out", "{d}/afile"], "is a file, not a directory", False),
    "pde-simulate-out-unwritable": ([*PDE_SIM, "--out", "/proc/dpattern-probe/sub"], "cannot write in /proc", False),
    "pde-simulate-size-too-big": (["pde", "simulate", "gray-scott", "--size", "100000"], "--size 100000", False),
    "pde-simulate-frames-too-many": (["pde", "simulate", "heat", "--frames", "999999999"], "--frames 999999999", False),
    "pde-simulate-tiny-dt": ([*PDE_SIM, "--dt", "1e-12"], "--dt 1e-12 would take", False),
    "pde-simulate-size-zero": (["pde", "simulate", "heat", "--size", "0"], "argument --size", True),
    "pde-simulate-one-frame": ([*PDE_SIM, "--frames", "1"], "--frames must be >= 2", False),
    "pde-simulate-param-nan": ([*PDE_SIM, "--param", "D=nan"], "argument --param", True),
    "pde-simulate-bad-method": ([*PDE_SIM, "--method", "rk4"], "--method 'rk4'", False),
    "pde-fit-batch-too-big": (["pde", "fit", "--batch", "100000000"], "--batch 100000000", False),
    "pde-fit-size-too-big": (["pde", "fit", "--size", "100000"], "--size 100000", False),
    "pde-fit-negative-iters": ([*FIT, "--iters", "-3"], "argument --iters", True),
    "pde-fit-zero-devices": ([*FIT, "--devices", "0"], "argument --devices", True),
    "pde-fit-window-too-long": ([*FIT, "--data", "{d}/ok.npz", "--window", "10"], "--window 10", False),
    "pde-fit-tiny-dt": ([*FIT, "--data", "{d}/ok.npz", "--dt", "1e-12"], "--dt 1e-12", False),
    "pde-fit-dx-a-string": ([*FIT, "--data", "{d}/dx_string.npz"], "dx_string.npz: dx must be a positive number", False),
    "pde-fit-metadata-a-list": ([*FIT, "--data", "{d}/meta_list.npz"], "meta_list.npz: its metadata must be a JSON object", False),
    "pde-fit-complex-u": ([*FIT, "--data", "{d}/complex.npz"], "complex.npz: frames u must be real numbers", False),
    "pde-fit-truncated-data": ([*FIT, "--data", "{d}/truncated.npz"], "truncated.npz: not a readable", False),
    "pde-fit-missing-data": ([*FIT, "--data", "{d}/missing.npz"], "missing.npz does not exist", False),
    "pde-fit-neural-with-init": (["pde", "fit", "--model", "neural-rda", "--init", "D_a=1"], "neural models have none", False),
    "pde-fit-out-under-a-file": ([*FIT, "--data", "{d}/ok.npz", "--out", "{d}/afile/x"], "afile is a file", False),
    "abm-simulate-agents-too-many": ([*ABM_SIM, "--agents", str(10**13)], "of memory is available", False),
    "abm-simulate-every-zero": ([*ABM_SIM, "--every", "0"], "argument --every", True),
    "abm-simulate-bad-boundary": ([*ABM_SIM, "--boundary", "mirror"], "argument --boundary", True),
    "abm-simulate-size-two": ([*ABM_SIM, "--size", "2"], "--size must be an integer >= 3", False),
    "abm-simulate-out-under-a-file": ([*ABM_SIM, "--out", "{d}/afile/sub"], "afile is a file", False),
    "abm-train-negative-iters": ([*ABM_TRAIN, "--iters", "-3"], "argument --iters", True),
    "abm-train-zero-devices": ([*ABM_TRAIN, "--devices", "0"], "argument --devices", True),
    "abm-train-steps-not-multiple-of-4": ([*ABM_TRAIN, "--steps", "6"], "--steps must be a multiple of 4", False),
    "abm-train-empty-target": ([*ABM_TRAIN, "--target", "{d}/blank.png"], "has no foreground", False),
    "abm-train-missing-target": ([*ABM_TRAIN, "--target", "{d}/missing.png"], "unknown image", False),
    "abm-train-agents-too-many": ([*ABM_TRAIN, "--agents", str(10**13)], "of memory is available", False),
    "abm-train-out-is-a-file": ([*ABM_TRAIN, "--out", "{d}/afile"], "is a file, not a directory", False),
}


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_input_is_refused_cleanly(tmp_path, name):
    args, message, usage = CASES[name]
    make_inputs(tmp_path)
    args = [a.format(d=tmp_path) for a in args]
    if "--out" not in args:
        args += ["--out", str(tmp_path / "out")]
    before = snapshot(tmp_path)
    r = dpattern(*args, cwd=tmp_path)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    assert lines and message in lines[-1], r.stderr
    assert usage or len(lines) == 1, r.stderr               # our own checks: exactly one line
    assert snapshot(tmp_path) == before                     # nothing new, nothing half-written


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    "A finished one-step `abm train` run and a `pde fit` run to resume."
    d = tmp_path_factory.mktemp("runs")
    make_inputs(d)
    abm = dpattern(*ABM_TRAIN, "--iters", "1", "--quiet", "--out", str(d / "abm"), cwd=d)
    pde = dpattern(*FIT, "--data", str(d / "ok.npz"), "--iters", "1", "--quiet", "--out", str(d / "pde"), cwd=d)
    assert abm.returncode == 0 and pde.returncode == 0, abm.stderr + pde.stderr
    return d


@pytest.mark.parametrize("argv, message", [
    ([*ABM_TRAIN, "--lr", "0.5", "--resume", "--out", "{d}/abm"], "--lr 0.5 (the run has 0.002) differ"),
    (["abm", "train", "--seed", "7", "--resume", "--out", "{d}/abm"], "--seed 7 (the run has 0) differ"),
    ([*FIT, "--window", "2", "--resume", "--out", "{d}/pde"], "--window 2 (the run has 1) differ"),
    (["pde", "simulate", "heat", "--size", "8", "--out", "{d}/pde"], "already holds a run"),
    ([*ABM_TRAIN, "--out", "{d}/abm"], "already holds a run"),
])
def test_resume_refuses_changed_flags_and_taken_directories(runs, argv, message):
    before = snapshot(runs)
    r = dpattern(*[a.format(d=runs) for a in argv], cwd=runs)
    assert r.returncode == 2 and "Traceback" not in r.stderr and message in r.stderr, r.stderr
    assert snapshot(runs) == before


def test_resume_applies_more_iterations(runs):
    r = dpattern("abm", "train", "--iters", "2", "--resume", "--quiet", "--out", str(runs / "abm"), cwd=runs)
    assert r.returncode == 0, r.stderr
    assert json.loads((runs / "abm" / "run.json").read_text())["config"]["iters"] == 2
    assert json.loads((runs / "abm" / "metrics.json").read_text())["iters"] == 2
    assert json.loads((runs / "abm" / "run.json").read_text())["config"]["agents"] == 8   # the rest from the run
