"""Fitting: hidden-channel bookkeeping, input validation, multi-device, and a neural RDA forecast."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import run_python
from dpattern.pde.classic import GrayScott
from dpattern.pde.fit import ShootingTask, check_trajectory, fit, fit_optimiser
from dpattern.pde.solver import Heat, Solver, solve


def test_hidden_estimates_converge_to_the_truth_with_the_true_model():
    "Repeated updates from every start frame rebuild the unobserved channel frame by frame (no off-by-one)."
    heat = Heat(0.3)
    u = jnp.stack([Heat().initial_condition(jax.random.key(k), (12, 12))[0] for k in (3, 4)])
    t = np.linspace(0, 3, 7)
    truth = solve(heat, u, t, dt=0.05)
    task = ShootingTask(t, truth[:, :1], window=2, batch_size=5, hidden=1, solver=Solver(dt=0.05))
    state = task.init(None).at[0, 0].set(truth[0, 1:])
    for i in range(30):
        batch = task.sample(state, jax.random.key(i))
        _, aux = task.loss(heat, batch, None)
        state = task.update(state, batch, aux)
    # each frame's estimate is a solve from the previous frame's estimate: exact up to the solver
    np.testing.assert_allclose(np.asarray(state[:, 0]), np.asarray(truth[:, 1:]), atol=1e-5)


def test_observed_data_is_never_modified():
    t = np.linspace(0, 2, 5)
    u = np.random.default_rng(0).random((5, 2, 8, 8)).astype(np.float32)
    task = ShootingTask(t, u, window=2, batch_size=4, hidden=1, solver=Solver(dt=0.1))
    state = task.init(None)
    model = Heat(0.1)
    for i in range(5):
        batch = task.sample(state, jax.random.key(i))
        _, aux = task.loss(model, batch, None)
        state = task.update(state, batch, aux)
        np.testing.assert_array_equal(np.asarray(batch["target"][:, :, :2]),
                                      u[np.asarray(batch["start"])[:, None] + 1 + np.arange(2)])
    np.testing.assert_array_equal(np.asarray(task.data[:, 0]), u)


def test_bad_inputs_fail_before_any_solve():
    u = np.zeros((4, 2, 8, 8), np.float32)
    with pytest.raises(ValueError, match="t has 3 times but u has 4 frames"):
        check_trajectory(np.arange(3.0), u)
    with pytest.raises(ValueError, match="non-finite"):
        check_trajectory(np.arange(4.0), np.where(np.arange(8) > 6, np.nan, u))
    with pytest.raises(ValueError, match="strictly increasing"):
        check_trajectory(np.array([0.0, 2.0, 1.0, 3.0]), u)
    with pytest.raises(ValueError, match="window must be"):
        ShootingTask(np.arange(4.0), u, window=4)
    with pytest.raises(ValueError, match="the data has 3 channels but GrayScott has only 2"):
        fit(GrayScott(), np.arange(4.0), np.zeros((4, 3, 8, 8)), steps=1)
    with pytest.raises(ValueError, match="parameters are D_a, D_b, feed, kill"):
        fit_optimiser(GrayScott(), 10, fit=["D"])
    with pytest.raises(ValueError, match="D_a must be >= 0"):
        GrayScott(D_a=-0.1)


def test_fit_on_two_devices():
    run_python("""
import jax, numpy as np
from dpattern.pde.solver import Heat, Solver, simulate
from dpattern.pde.fit import fit
assert len(jax.devices()) == 2
t, u = simulate(Heat(0.5), jax.random.key(0), size=12, t_end=4, frames=9)
r = fit(Heat(0.3), t, u, steps=150, batch_size=8, progress=False, log_every=10**9)
assert abs(r.model.parameters()["D"] / 0.5 - 1) < 0.01, r.model.parameters()
""", devices=2)


def test_neural_rda_beats_persistence_on_held_out_frames():
    "Train on Gray-Scott frames t <= 700, forecast t = 720..1000 from the last training frame."
    from dpattern.pde.fit import forecast_errors
    from dpattern.pde.neural import NeuralRDA
    from dpattern.pde.solver import simulate
    t, u = simulate(GrayScott(), jax.random.key(0), size=32, t_end=1000, frames=51)
    u = np.asarray(u)
    solver = Solver(dt=2.0)
    model = NeuralRDA(2, width=16, degree=3, terms=("reaction", "diffusion"), key=jax.random.key(1))
    result = fit(model, t[:36], u[:36], steps=300, window=4, batch_size=4, solver=solver, learning_rate=0.02,
                 progress=False, log_every=10**9)
    errs = forecast_errors(result.model, t, u, start=35, solver=solver)
    print("neural RDA", np.round(errs["model"], 4), "\npersistence", np.round(errs["persistence"], 4))
    assert (errs["model"] < errs["persistence"]).all()
    assert errs["model"].mean() < 0.8 * errs["persistence"].mean()
