"""Careless and hostile input to `dpattern nca train`, `nca rollout` and `inspect`, through the real command line
in subprocesses: each case exits with code 2, prints no traceback, names the flag or file that is wrong, and
leaves the output directory as it was (absent, or unchanged)."""
import json
import os
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT

TINY = ["--size", "8", "--pad", "1", "--channels", "6", "--hidden", "8", "--steps", "4", "--batch", "2",
        "--pool-size", "4", "--iters", "2", "--quiet"]


def dpattern(*argv, timeout=600):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    code = "import sys; from dpattern.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *map(str, argv)], capture_output=True, text=True,
                          timeout=timeout, env=env)


def snapshot(path):
    "Every file under `path` with its size and modification time (None if `path` does not exist)."
    if not path.exists():
        return None
    if path.is_file():
        return {"": (path.stat().st_size, path.stat().st_mtime_ns)}
    return {str(p.relative_to(path)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(path.rglob("*"))}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    "A complete tiny training run."
    out = tmp_path_factory.mktemp("hostile") / "run"
    r = dpattern("nca", "train", *TINY, "--out", out)
    assert r.returncode == 0, r.stderr
    return out


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    "Crafted input files."
    d = tmp_path_factory.mktemp("files")
    Image.fromarray(np.full((1, 1, 4), 200, np.uint8)).save(d / "one.png")
    Image.new("RGB", (4, 4), (255, 255, 255)).save(d / "white.png")      # white becomes transparent: empty
    (d / "notes.png").write_text("not an image")
    Image.fromarray(np.zeros((16, 16, 4), np.uint8)).save(d / "clear.png")
    (d / "afile").write_text("x")
    np.savez(d / "complex.npz", u=np.ones((4, 1, 8, 8), np.complex64))
    np.savez(d / "good.npz", u=np.random.default_rng(0).random((4, 1, 8, 8)).astype(np.float32))
    (d / "cut.npz").write_bytes((d / "good.npz").read_bytes()[:300])
    # an .npz whose member header claims a 10^12-element array
    with zipfile.ZipFile(d / "huge.npz", "w") as z:
        header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1000, 1, 1000, 1000000), }"
        header = header + " " * (118 - len(header)) + "\n"
        z.writestr("u.npy", b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode())
    return d


def _train_cases():
    return [
        (["--hidden", "0"], "--hidden"),
        (["--batch", "0"], "--batch"),
        (["--batch-size", "0"], "--batch"),
        (["--steps", "1", "2", "3"], "--steps"),
        (["--steps", "9", "3"], "--steps"),
        (["--iters", "-3"], "--iters"),
        (["--devices", "0"], "--devices"),
        (["--devices", "999"], "--devices 999"),
        (["--lr", "nan"], "--lr"),
        (["--lr", "-1"], "--lr"),
        (["--fire-rate", "2"], "--fire-rate"),
        (["--damage", "1", "--pool-size", "0"], "--damage"),
        (["--size", "100000"], "--size 100000"),
        (["--batch", "100000000"], "--batch 100000000"),
        (["--channels", "100000000"], "--channels 100000000"),
        (["--steps", "100000000"], "--steps 100000000"),
        (["--target", "{files}/one.png"], "one.png is 1x1 pixels"),
        (["--target", "{files}/white.png"], "white.png is fully transparent"),
        (["--target", "{files}/notes.png"], "notes.png"),
        (["--target", "{files}/clear.png"], "clear.png is fully transparent"),
        (["--target", "{files}/missing.npy"], "missing.npy"),
        (["--task", "imitate", "--target", "{files}/complex.npz"], "complex.npz"),
        (["--task", "imitate", "--target", "{files}/cut.npz"], "cut.npz"),
        (["--task", "imitate", "--target", "{files}/huge.npz"], "huge.npz"),
        (["--task", "imitate", "--target", "no-such-pde"], "no-such-pde"),
    ]


@pytest.mark.parametrize("args, message", _train_cases(), ids=lambda a: " ".join(a) if isinstance(a, list) else "")
def test_nca_train_refuses(tmp_path, files, args, message):
    out = tmp_path / "run"
    args = [a.replace("{files}", str(files)) for a in args]
    r = dpattern("nca", "train", *TINY, *args, "--out", out)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    assert message in r.stderr, r.stderr
    assert not out.exists()


@pytest.mark.parametrize("where, message", [("{files}/afile", "is a file, not a directory"),
                                            ("{files}/afile/sub", "no directory can be made")])
def test_nca_train_refuses_a_bad_out(files, where, message):
    out = where.replace("{files}", str(files))
    before = snapshot(files)
    r = dpattern("nca", "train", *TINY, "--out", out)
    assert r.returncode == 2 and "Traceback" not in r.stderr and message in r.stderr and "--out" in r.stderr, r.stderr
    assert snapshot(files) == before


@pytest.mark.parametrize("args, message", [(["--lr", "0.1"], "--lr 0.1"), (["--seed", "3"], "--seed 3"),
                                           (["--hidden", "16"], "--hidden 16")])
def test_resume_refuses_changed_flags(tmp_path, finished, args, message):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    before = snapshot(run)
    r = dpattern("nca", "train", *TINY, *args, "--out", run, "--resume")
    assert r.returncode == 2 and "Traceback" not in r.stderr and message in r.stderr, r.stderr
    assert snapshot(run) == before


def test_existing_run_is_refused(tmp_path, finished):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    before = snapshot(run)
    r = dpattern("nca", "train", *TINY, "--out", run)
    assert r.returncode == 2 and "already holds a run" in r.stderr and "--resume" in r.stderr, r.stderr
    assert snapshot(run) == before


def _break(run, how):
    "Damage the run directory `run` in one of several ways; return the file that is wrong."
    if how == "config-missing-key":
        c = json.loads((run / "config.json").read_text())
        del c["target"]
        (run / "run.json").unlink()
        (run / "config.json").write_text(json.dumps(c))
        return "config.json"
    if how == "manifest-list":
        (run / "run.json").write_text("[1, 2]")
        return "run.json"
    if how == "manifest-not-json":
        (run / "run.json").write_text("{nope")
        return "run.json"
    if how == "manifest-other-family":
        m = json.loads((run / "run.json").read_text())
        (run / "run.json").write_text(json.dumps({**m, "family": "zoo"}))
        return "zoo"
    if how == "model-junk":
        (run / "model.dpt").write_bytes(b"junk" * 100)
        return "model.dpt"
    if how == "model-of-another-family":
        from dpattern.pde.classic import make_model
        make_model("heat").save(run / "model.dpt")
        return "model.dpt"
    if how == "model-truncated":
        data = (run / "model.dpt").read_bytes()
        (run / "model.dpt").write_bytes(data[: len(data) // 2])
        return "model.dpt"
    raise ValueError(how)


BREAKS = ["config-missing-key", "manifest-list", "manifest-not-json", "manifest-other-family", "model-junk",
          "model-of-another-family", "model-truncated"]


@pytest.mark.parametrize("how", BREAKS)
def test_nca_rollout_refuses_a_broken_run(tmp_path, finished, how):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    culprit = _break(run, how)
    before = snapshot(run)
    r = dpattern("nca", "rollout", run, "--steps", "4")
    assert r.returncode == 2 and "Traceback" not in r.stderr and culprit in r.stderr, r.stderr
    assert snapshot(run) == before


@pytest.mark.parametrize("args, message", [(["--steps", "0"], "--steps"), (["--steps", "99999999"], "--steps"),
                                           (["{missing}"], "not a run directory")])
def test_nca_rollout_refuses_bad_flags(tmp_path, finished, args, message):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    before = snapshot(run)
    args = [a.replace("{missing}", str(tmp_path / "missing")) for a in args]
    r = dpattern("nca", "rollout", *(args if "not a run" in message else [run, *args]))
    assert r.returncode == 2 and "Traceback" not in r.stderr and message in r.stderr, r.stderr
    assert snapshot(run) == before


@pytest.mark.parametrize("how", BREAKS)
def test_inspect_refuses_a_broken_nca_run(tmp_path, finished, how):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    culprit = _break(run, how)
    before = snapshot(run)
    r = dpattern("inspect", run)
    assert r.returncode == 2 and "Traceback" not in r.stderr and culprit in r.stderr, r.stderr
    assert snapshot(run) == before


def _crafted_run(d, how):
    "A run directory of another family, crafted; return the file that is wrong."
    d.mkdir()
    if how == "params-list":
        (d / "params.json").write_text("[1, 2]")
        (d / "checkpoint_latest.dpt").write_bytes(b"x")
        return "params.json"
    if how == "trajectory-truncated":
        np.savez(d / "trajectory.npz", positions=np.zeros((2, 5, 2)), headings=np.zeros((2, 5)),
                 field=np.zeros((2, 8, 8)))
        data = (d / "trajectory.npz").read_bytes()
        (d / "trajectory.npz").write_bytes(data[: len(data) // 2])
        return "trajectory.npz"
    if how == "trajectory-wrong-shape":
        np.savez(d / "trajectory.npz", positions=np.zeros((2, 5, 3)), headings=np.zeros((2, 5)),
                 field=np.zeros((2, 8, 8)))
        return "trajectory.npz"
    if how == "abm-metrics-list":
        (d / "metrics.json").write_text("[]")
        (d / "checkpoint_latest.dpt").write_bytes(b"x")
        return "metrics.json"
    raise ValueError(how)


@pytest.mark.parametrize("how", ["params-list", "trajectory-truncated", "trajectory-wrong-shape", "abm-metrics-list"])
def test_inspect_refuses_crafted_runs(tmp_path, how):
    run = tmp_path / "run"
    culprit = _crafted_run(run, how)
    before = snapshot(run)
    r = dpattern("inspect", run)
    assert r.returncode == 2 and "Traceback" not in r.stderr and culprit in r.stderr, r.stderr
    assert snapshot(run) == before


@pytest.mark.parametrize("args, message", [(["--refine", "-1"], "--refine"), (["--out", "{run}/config.json"], "--out")])
def test_inspect_refuses_bad_flags(tmp_path, finished, args, message):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    before = snapshot(run)
    r = dpattern("inspect", run, *[a.replace("{run}", str(run)) for a in args])
    assert r.returncode == 2 and "Traceback" not in r.stderr and message in r.stderr, r.stderr
    assert snapshot(run) == before


def test_metrics_are_strict_json_and_inspect_reads_the_manifest(tmp_path, finished):
    json.loads((finished / "metrics.json").read_text(), parse_constant=lambda c: 1 / 0)
    m = json.loads((finished / "run.json").read_text())
    assert (m["family"], m["command"], m["config"]["hidden"]) == ("nca", "train", 8)
    run = tmp_path / "old"                      # a run directory of the previous version: no run.json
    shutil.copytree(finished, run)
    (run / "run.json").unlink()
    r = dpattern("inspect", run, "--out", tmp_path / "figs")
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "figs" / "inspect.json").read_text())["kind"] == "nca-train"


def test_divergence_is_named(tmp_path):
    "A learning rate that makes training blow up: exit 2, divergence and --lr named, no traceback."
    r = dpattern("nca", "train", *TINY, "--lr", "1e6", "--iters", "20", "--out", tmp_path / "run")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "diverged" in r.stderr and "--lr 1e+06" in r.stderr and "no live cells" not in r.stderr, r.stderr
