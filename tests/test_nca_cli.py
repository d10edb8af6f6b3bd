"""`dpattern nca`: bad input fails before anything is written; --resume after SIGKILL continues."""
import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import ROOT
from dpattern.cli import main
from dpattern.core.checkpoint import read_header


def _run_main(argv):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    return code, err.getvalue()


def _bad_inputs(tmp_path):
    one_d = tmp_path / "line.npy"
    np.save(one_d, np.linspace(0, 1, 10, dtype=np.float32))
    nan = tmp_path / "nan.npy"
    a = np.zeros((4, 16, 16), np.float32)
    a[0, 3, 3] = np.nan
    np.save(nan, a)
    tiny = tmp_path / "tiny.npy"
    np.save(tiny, np.zeros((4, 2, 2), np.float32))
    return [
        (["--target", str(one_d)], "got a 1-D array"),
        (["--target", str(nan)], "non-finite"),
        (["--channels", "3"], "--channels 3 is below the 4 visible channels"),
        (["--size", "2"], "smaller than the 3x3"),
        (["--target", str(tiny)], "smaller than the 3x3"),
        (["--target", "logoo"], "unknown image 'logoo'"),
        (["--task", "morph", "--target", "logo"], "at least two --target"),
        (["--task", "texture", "--channels", "2"], "--channels 2 is below the 3 visible channels"),
        (["--target", str(tmp_path / "missing.npy")], "does not exist"),
    ]


def test_bad_input_is_a_clear_error_and_writes_nothing(tmp_path):
    for i, (args, message) in enumerate(_bad_inputs(tmp_path)):
        out = tmp_path / f"run{i}"
        code, err = _run_main(["nca", "train", "--out", str(out), "--iters", "5", "--quiet", *args])
        assert code == 2, (args, err)
        assert err.startswith("dpattern nca train: error:") and message in err, (args, err)
        assert not out.exists(), args


def test_existing_run_is_not_overwritten(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoint_latest.dpt").write_bytes(b"x")
    code, err = _run_main(["nca", "train", "--out", str(out), "--iters", "5", "--quiet"])
    assert code == 2 and "--resume" in err
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint_latest.dpt"]


TRAIN_ARGS = ["nca", "train", "--size", "12", "--pad", "2", "--channels", "8", "--hidden", "16", "--steps", "8", "12",
              "--batch-size", "4", "--pool-size", "16", "--iters", "30", "--quiet"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    "A complete tiny training run (in this process)."
    out = tmp_path_factory.mktemp("nca") / "full"
    code, err = _run_main(TRAIN_ARGS + ["--out", str(out)])
    assert code == 0, err
    return out


def test_resume_after_sigkill_continues_from_the_last_checkpoint(tmp_path, finished_run):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    cut = tmp_path / "cut"
    code = "import sys; from dpattern.cli import main; sys.exit(main(sys.argv[1:]))"
    cmd = [sys.executable, "-c", code] + TRAIN_ARGS + ["--out", str(cut)]
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and p.poll() is None:
        ck = cut / "checkpoint_latest.dpt"
        try:
            if ck.exists() and read_header(ck)["step"] >= 12:
                break
        except Exception:
            pass
        time.sleep(0.02)
    p.send_signal(signal.SIGKILL)
    p.wait()
    killed_at = read_header(cut / "checkpoint_latest.dpt")["step"]
    assert 12 <= killed_at < 30, killed_at
    assert not (cut / "metrics.json").exists()
    r = subprocess.run(cmd + ["--resume"], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert f"at step {killed_at}" in r.stdout + r.stderr
    a, b = read_header(finished_run / "checkpoint_latest.dpt"), read_header(cut / "checkpoint_latest.dpt")
    assert b["step"] == 30 and len(b["losses"]) == 30
    np.testing.assert_allclose(a["losses"], b["losses"], rtol=1e-5)   # exactly the uninterrupted run
    m = json.loads((cut / "metrics.json").read_text())
    assert m["iters"] == 30 and m["iters_this_run"] == 30 - killed_at
    for name in ("rollout.gif", "summary.png", "model.dpt", "config.json"):
        assert (cut / name).exists(), name


def test_run_directory_and_metrics(finished_run):
    m = json.loads((finished_run / "metrics.json").read_text())
    for k in ("initial_loss", "final_loss", "iters", "seconds", "seconds_per_iter"):
        assert k in m, k
    assert m["iters"] == 30 and m["final_loss"] < m["initial_loss"]
    from dpattern.core.model import load_model
    from dpattern.nca.model import NCA
    assert isinstance(load_model(finished_run / "model.dpt"), NCA)
    assert isinstance(load_model(finished_run / "checkpoint_best.dpt"), NCA)
    assert any((finished_run / "logs").iterdir())


def test_rollout_command_animates_a_saved_run(finished_run):
    code, err = _run_main(["nca", "rollout", str(finished_run), "--steps", "20", "--damage"])
    assert code == 0, err
    from PIL import Image
    assert Image.open(finished_run / "rollout-damage.gif").n_frames >= 2
    code, err = _run_main(["nca", "rollout", str(finished_run.parent / "nothing")])
    assert code == 2 and "not a run directory" in err
