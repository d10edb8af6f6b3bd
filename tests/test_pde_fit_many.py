"""`dpattern pde fit --data a.npz b.npz`: trajectories of different sizes and initial conditions in one fit, and
the checks that refuse files which do not belong together (before anything compiles or is written)."""
import contextlib
import io
import json

import numpy as np
import pytest

from dpattern.cli import main


def run(*args) -> tuple[int, str]:
    "Run `dpattern ARGS` in this process: (exit code, stderr)."
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, err.getvalue()


def test_fit_on_two_sizes_recovers_gray_scott(tmp_path):
    "32² and 24² simulations from two seeds; every parameter starts 20% off."
    for name, size, seed in (("a", 32, 1), ("b", 24, 2)):
        code, err = run("pde", "simulate", "gray-scott", "--size", size, "--seed", seed, "--t-end", 1000,
                        "--frames", 51, "--out", tmp_path / name)
        assert code == 0, err
    start = dict(D_a=0.12, D_b=0.04, feed=0.0623 * 1.2, kill=0.06268 * 0.8)
    code, err = run("pde", "fit", "--data", tmp_path / "a" / "trajectory.npz", tmp_path / "b" / "trajectory.npz",
                    "--weights", 1, 2, *[x for k, v in start.items() for x in ("--init", f"{k}={v}")],
                    "--iters", 200, "--batch", 4, "--quiet", "--out", tmp_path / "fit")
    assert code == 0, err
    report = json.loads((tmp_path / "fit" / "params.json").read_text())
    e = report["relative_error"]
    assert abs(e["feed"]) < 0.02 and abs(e["kill"]) < 0.02, e
    assert abs(e["D_a"]) < 0.05 and abs(e["D_b"]) < 0.05, e
    per = report["trajectories"]
    assert [v["weight"] for v in per.values()] == [1.0, 2.0] and len(per) == 2, per
    assert all(0 <= v["loss"] < 1e-3 for v in per.values()), per
    assert report["laplacian"] == "nine-point"                  # the files' own discretisation


def write(path, t=None, u=None, dx=1.0, **metadata):
    t = np.arange(5.0) if t is None else t
    u = np.random.default_rng(0).random((len(t), 2, 8, 8)) if u is None else u
    np.savez(path, t=t, u=u, dx=dx, **({"metadata": np.array(json.dumps(metadata))} if metadata else {}))
    return path


@pytest.mark.parametrize("case, message", [
    ("channels", "b.npz: 3 channels, but"),
    ("dx", "b.npz: grid spacing dx = 0.5, but"),
    ("times", "b.npz: output times must be strictly increasing"),
    ("nan", "b.npz: u contains 80 non-finite values"),
    ("weights", "--weights: 1 weights for 2 --data files"),
    ("laplacian", "record different discretisations"),
    ("spectral", "needs a periodic grid"),
])
def test_bad_files_are_refused_by_name_before_anything_is_written(tmp_path, case, message):
    a = write(tmp_path / "a.npz", laplacian="nine-point")
    u = np.random.default_rng(1).random((5, 2, 8, 8))
    b = {"channels": lambda: write(tmp_path / "b.npz", u=np.zeros((5, 3, 8, 8))),
         "dx": lambda: write(tmp_path / "b.npz", dx=0.5),
         "times": lambda: write(tmp_path / "b.npz", t=np.array([0.0, 1, 3, 2, 4])),
         "nan": lambda: write(tmp_path / "b.npz", u=np.where(np.arange(8) == 3, np.nan, u)),
         "laplacian": lambda: write(tmp_path / "b.npz", laplacian="spectral"),
         }.get(case, lambda: write(tmp_path / "b.npz"))()
    extra = {"weights": ["--weights", 1], "spectral": ["--laplacian", "spectral", "--boundary", "reflect"]}.get(case, [])
    code, err = run("pde", "fit", "--data", a, b, *extra, "--iters", 1, "--out", tmp_path / "out")
    assert code == 2 and message in err, err
    assert err.count("\n") == 1 and not (tmp_path / "out").exists()



def test_two_sizes_on_two_devices_give_the_losses_of_one(python):
    "Each group of one grid size is split over the devices on its own; the losses match a one-device run."
    python("""
import jax, numpy as np
from dpattern.pde.solver import Heat, simulate
from dpattern.pde.fit import fit
assert len(jax.devices()) == 2
(t1, u1), (t2, u2) = (simulate(Heat(0.5), jax.random.key(k), size=n, t_end=4, frames=9) for k, n in ((0, 12), (1, 10)))
runs = [fit(Heat(0.3), [t1, t2], [u1, u2], weights=[1, 3], steps=6, batch_size=4, devices=d, progress=False,
            log_every=10**9) for d in (1, 2)]
np.testing.assert_allclose(runs[0].losses, runs[1].losses, rtol=1e-5)
assert runs[0].losses[-1] < runs[0].losses[0]
""", devices=2)
