"""`Imitate`: an NCA learns a PDE's dynamics from a `dpattern pde simulate` trajectory (CLI end to end)."""
import contextlib
import io
import json

import numpy as np

from dpattern.cli import main


def _run(argv):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    return code, err.getvalue()


def test_nca_imitates_a_fisher_kpp_trajectory(tmp_path):
    code, err = _run(["pde", "simulate", "fisher-kpp", "--size", "24", "--t-end", "8", "--frames", "9",
                      "--out", str(tmp_path / "pde")])
    assert code == 0, err
    traj = tmp_path / "pde" / "trajectory.npz"
    code, err = _run(["nca", "train", "--task", "imitate", "--target", str(traj), "--steps", "2", "--horizon", "3",
                      "--hidden", "16", "--iters", "150", "--out", str(tmp_path / "run"), "--quiet"])
    assert code == 0, err
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    # the untrained NCA changes nothing, so its loss is the persistence forecast's error, computed here independently
    u = np.load(traj)["u"]
    persistence = float(np.mean((u[1:] - u[:1]) ** 2))
    assert abs(m["initial_loss"] - persistence) < 1e-6 * max(1.0, persistence), (m["initial_loss"], persistence)
    # a free run from frame 0 through all 8 intervals beats persistence several times over
    assert m["final_loss"] < persistence / 4, (m["final_loss"], persistence)
    assert (tmp_path / "run" / "rollout.gif").stat().st_size > 0


def test_imitate_bad_input_fails_before_writing(tmp_path):
    no_u = tmp_path / "no_u.npz"
    np.savez(no_u, v=np.zeros((3, 1, 8, 8), np.float32))
    short = tmp_path / "short.npz"
    np.savez(short, u=np.zeros((1, 1, 8, 8), np.float32))
    for argv, message in [(["--target", str(no_u)], "holds no array 'u'"),
                          (["--target", str(short)], "at least 2 frames"),
                          (["--target", str(tmp_path / "missing.npz")], "does not exist"),
                          (["--target", "logo"], "needs a trajectory.npz or a PDE model name"),
                          (["--target", "fisher-kpp", "--frames", "5", "--horizon", "5"], "horizon must be between")]:
        out = tmp_path / "never"
        code, err = _run(["nca", "train", "--task", "imitate", *argv, "--out", str(out)])
        assert code == 2 and message in err, (argv, err)
        assert not out.exists()
