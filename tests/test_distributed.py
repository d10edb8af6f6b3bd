"""Scale-out: data parallel over 1/2/4 simulated devices, two processes through jax.distributed, split grids."""
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, run_python

DP_SCRIPT = """
import jax, numpy as np, optax
from dpattern.core.train import train
from toy import Mixer, make_task
assert jax.device_count() == {n}
r = train(Mixer(3, key=jax.random.key(0)), make_task(batch_size=8), 3, key=jax.random.key(1),
          optimiser=optax.adam(0.05), progress=False)
np.save("{out}", np.asarray(r.model.weight))
"""


def test_data_parallel_1_2_4_devices_agree(tmp_path):
    w = {}
    for n in (1, 2, 4):
        run_python(DP_SCRIPT.format(n=n, out=tmp_path / f"{n}.npy"), devices=n)
        w[n] = np.load(tmp_path / f"{n}.npy")
    np.testing.assert_allclose(w[1], w[2], atol=1e-5)
    np.testing.assert_allclose(w[1], w[4], atol=1e-5)


MP_SCRIPT = """
import os, sys
import jax, numpy as np, optax
from dpattern.core.distributed import initialize
initialize("127.0.0.1:{port}", 2, int(sys.argv[1]))
from dpattern.core.train import train
from toy import Mixer, make_task
assert jax.device_count() == 4 and jax.local_device_count() == 2
r = train(Mixer(3, key=jax.random.key(0)), make_task(batch_size=8), 3, key=jax.random.key(1),
          optimiser=optax.adam(0.05), progress=False, out="{out}", checkpoint_every=1)
np.save("{out}_w%s.npy" % sys.argv[1], np.asarray(r.model.weight))
"""


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_train_together_and_one_writes(tmp_path):
    out = tmp_path / "run"
    code = MP_SCRIPT.format(port=_free_port(), out=out)
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2",
               PYTHONPATH=os.pathsep.join([str(ROOT / "tests"), str(ROOT)]))
    procs = [subprocess.Popen([sys.executable, "-c", code, str(i)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in (0, 1)]
    for p in procs:
        o, e = p.communicate(timeout=300)
        assert p.returncode == 0, e
    w0, w1 = np.load(f"{out}_w0.npy"), np.load(f"{out}_w1.npy")
    np.testing.assert_array_equal(w0, w1)
    run_python(DP_SCRIPT.format(n=1, out=tmp_path / "single.npy"), devices=1)
    np.testing.assert_allclose(w0, np.load(tmp_path / "single.npy"), atol=1e-5)
    files = sorted(p.name for p in out.iterdir())
    assert files == ["checkpoint_best.dpt", "checkpoint_latest.dpt", "logs"], files
    assert len(list((out / "logs").iterdir())) == 1  # one event file: only process 0 logged


SPLIT_OPS = """
import jax, numpy as np
from dpattern.core.distributed import map_space, space_mesh, cell_uniform
from dpattern.core import operators as ops
mesh = space_mesh()
assert mesh.size == 4
for b in ops.BOUNDARIES:
    def f(u, key, steps=15):
        def step(u, k):
            src = cell_uniform(k, u.shape) < 0.05
            u = (u + 0.1 * ops.laplacian(u, boundary=b) + 0.05 * ops.flux_diffusion(1 + u ** 2, u, boundary=b)
                 + 0.01 * ops.gradient(u, boundary=b, scale=2)[0] + 0.1 * src
                 + 0.01 * ops.neighbourhood_max(u, b) + 0.01 * ops.average(u, b, scale=3))
            return u, None
        return jax.lax.scan(step, u, jax.random.split(key, steps))[0]
    u0 = jax.random.uniform(jax.random.key(0), (2, 32, 20))
    split = jax.jit(map_space(f, mesh))(u0, jax.random.key(1))
    whole = jax.jit(f)(u0, jax.random.key(1))
    err = float(np.abs(np.asarray(split) - np.asarray(whole)).max())
    assert err < 1e-6, (b, err)
    print(b, err)
"""


def test_operators_on_a_split_grid_match_the_whole_grid():
    r = run_python(SPLIT_OPS, devices=4)
    assert len(r.stdout.splitlines()) == 4, r.stdout


PDE_DP = """
import jax, numpy as np
from dpattern.pde.classic import GrayScott
from dpattern.pde.solver import solve
from dpattern.pde.fit import fit
assert jax.device_count() == {n}
true = GrayScott()
t = np.linspace(0, 40, 9)
u = np.asarray(solve(true, true.initial_condition(jax.random.key(0), (24, 24)), t))
r = fit(GrayScott(D_a=0.13, D_b=0.04, feed=0.08, kill=0.05), t, u, steps=3, batch_size=8, key=jax.random.key(1),
        progress=False)
np.save("{out}", np.array([float(v) for v in r.model.parameters().values()]))
"""


def test_pde_fit_data_parallel_1_2_4_devices_agree(tmp_path):
    p = {}
    for n in (1, 2, 4):
        run_python(PDE_DP.format(n=n, out=tmp_path / f"{n}.npy"), devices=n)
        p[n] = np.load(tmp_path / f"{n}.npy")
    assert not np.allclose(p[1], [0.13, 0.04, 0.08, 0.05])  # the fit moved
    np.testing.assert_allclose(p[1], p[2], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(p[1], p[4], rtol=1e-5, atol=1e-7)


GS_SPLIT = """
import jax, numpy as np
from dpattern.core.distributed import map_space, space_mesh
from dpattern.pde.classic import GrayScott
from dpattern.pde.solver import Solver
mesh = space_mesh()
assert mesh.size == 4
ts = np.linspace(0, 200, 5)
for boundary in ("periodic", "reflect"):
    model = GrayScott(boundary=boundary)
    u0 = model.initial_condition(jax.random.key(3), (64, 48))
    solver = Solver(dt=1.0)
    whole = jax.jit(lambda u: solver(model, u, ts))(u0)
    split = jax.jit(map_space(lambda u: solver(model, u, ts), mesh))(u0)
    err = float(np.abs(np.asarray(split) - np.asarray(whole)).max())
    change = float(np.abs(np.asarray(whole[-1]) - np.asarray(whole[0])).max())
    assert err < 1e-6 and change > 0.05, (boundary, err, change)
    print(boundary, err)
"""


def test_gray_scott_on_a_split_grid_matches_one_device():
    r = run_python(GS_SPLIT, devices=4)
    assert len(r.stdout.splitlines()) == 2, r.stdout


NCA_DP = """
import jax, numpy as np, optax
from dpattern.core.data import load_image
from dpattern.core.train import train
from dpattern.nca.model import NCA
from dpattern.nca.tasks import Grow
assert jax.device_count() == {n}
target = load_image("logo", size=12, pad=2)
task = Grow(target, channels=8, batch_size=8, pool_size=16, steps=(8, 12))
r = train(NCA(8, hidden=16, key=jax.random.key(0)), task, 3, key=jax.random.key(1), optimiser=optax.adam(1e-2),
          progress=False)
np.save("{out}", np.concatenate([np.ravel(x) for x in jax.tree.leaves(r.model.partition()[0])]))
"""


def test_nca_training_data_parallel_1_2_4_devices_agree(tmp_path):
    p = {}
    for n in (1, 2, 4):
        run_python(NCA_DP.format(n=n, out=tmp_path / f"{n}.npy"), devices=n)
        p[n] = np.load(tmp_path / f"{n}.npy")
    np.testing.assert_allclose(p[1], p[2], atol=1e-5)
    np.testing.assert_allclose(p[1], p[4], atol=1e-5)


NCA_SPLIT = """
import jax, jax.numpy as jnp, numpy as np, equinox as eqx
from dpattern.core.distributed import map_space, space_mesh
from dpattern.nca.model import NCA, seed_state
mesh = space_mesh()
assert mesh.size == 4
for boundary in ("periodic", "reflect"):
    nca = NCA(8, hidden=32, fire_rate=0.5, boundary=boundary, key=jax.random.key(0))
    # a non-zero last layer, so the rule actually changes the state
    nca = eqx.tree_at(lambda m: m.update.w2, nca, 0.3 * jax.random.normal(jax.random.key(1), nca.update.w2.shape))
    x0 = seed_state(8, (32, 24), batch=2)
    run = lambda x, k: nca.rollout(x, 30, k)[0]
    whole = jax.jit(run)(x0, jax.random.key(2))
    split = jax.jit(map_space(run, mesh))(x0, jax.random.key(2))
    err = float(np.abs(np.asarray(split) - np.asarray(whole)).max())
    grown = float((np.asarray(whole)[:, 3] > 0.1).mean())
    assert err < 1e-6 and grown > 0.05, (boundary, err, grown)
    print(boundary, err, grown)
"""


def test_nca_rollout_on_a_split_grid_matches_one_device():
    r = run_python(NCA_SPLIT, devices=4)
    assert len(r.stdout.splitlines()) == 2, r.stdout
