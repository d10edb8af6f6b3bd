"""PDE inspection: term maps against analytic Gray–Scott terms, parameter uncertainties against noise level
and a Monte-Carlo spread, the Jacobian against finite differences, and TensorBoard logging during a fit."""
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dpattern.inspect.pde import (GrayScottRDA, _value_and_jacobian, gauss_newton, parameter_uncertainty,
                                  shooting_residuals, term_maps, terms)
from dpattern.pde.classic import GrayScott
from dpattern.pde.fit import fit
from dpattern.pde.neural import NeuralChemotaxis, NeuralRDA
from dpattern.pde.solver import Solver, simulate

SOLVER = Solver(dt=1.0)


def _randomise(model, key, scale=1.0):
    params, static = model.partition()
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    return eqx.combine(jax.tree.unflatten(tree, [scale * jax.random.normal(k, x.shape) for k, x in zip(keys, leaves)]),
                       static)


@pytest.fixture(scope="module")
def gray_scott_data():
    t, clean = simulate(GrayScott(), jax.random.key(0), size=32, t_end=600, frames=31)
    clean = np.asarray(clean)
    span = clean.max(axis=(0, 2, 3)) - clean.min(axis=(0, 2, 3))
    return np.asarray(t), clean, span


def _lap5(x, dx):
    return (jnp.roll(x, 1, -1) + jnp.roll(x, -1, -1) + jnp.roll(x, 1, -2) + jnp.roll(x, -1, -2) - 4 * x) / dx ** 2


def test_term_maps_reproduce_analytic_gray_scott_terms(gray_scott_data):
    "Acceptance: every term map of Gray–Scott written as a neural RDA equals the analytic term to 1e-4 relative."
    t, traj, _ = gray_scott_data
    params = dict(D_a=0.16, D_b=0.08, feed=0.035, kill=0.065)
    model = GrayScottRDA(**params, dx=0.7)
    maps = term_maps(model, traj)
    a, b = traj[:, 0], traj[:, 1]
    F, k = params["feed"], params["kill"]
    analytic = dict(diffusion=np.stack([params["D_a"] * _lap5(a, 0.7), params["D_b"] * _lap5(b, 0.7)], 1),
                    production=np.stack([F * np.ones_like(a), a * b * b], 1),
                    decay=np.stack([-(F + b * b) * a, -(F + k) * b], 1))
    assert list(maps) == ["diffusion", "production", "decay"]
    for name, want in analytic.items():
        err = float(np.abs(np.asarray(maps[name]) - want).max() / np.abs(want).max())
        print(f"{name}: max relative error {err:.1e}")
        assert err < 1e-4, (name, err)
    rhs = jax.vmap(lambda u: model(0.0, u))(traj)
    np.testing.assert_allclose(np.asarray(sum(maps.values())), np.asarray(rhs), atol=1e-6 * float(np.abs(rhs).max()))


@pytest.mark.parametrize("boundary", ["periodic", "reflect"])
def test_terms_sum_to_the_right_hand_side_for_any_weights(boundary):
    u = jax.random.uniform(jax.random.key(1), (3, 12, 12))
    rda = _randomise(NeuralRDA(3, width=8, layers=2, degree=2, epsilon=0.05, dx=0.5, boundary=boundary,
                               key=jax.random.key(0)), jax.random.key(2))
    chemo = _randomise(NeuralChemotaxis(1, 2, width=8, dx=0.5, boundary=boundary, key=jax.random.key(0)),
                       jax.random.key(3))
    for model, names in ((rda, {"diffusion", "advection", "production", "decay", "damping"}),
                         (chemo, {"diffusion", "chemotaxis", "growth", "production", "decay", "damping"})):
        parts = terms(model, u)
        assert set(parts) == names
        rhs = model(0.0, u)
        np.testing.assert_allclose(np.asarray(sum(parts.values())), np.asarray(rhs),
                                   atol=1e-5 * float(np.abs(rhs).max()))
    # chemotaxis acts on cells only, production and decay on signals only
    parts = terms(chemo, u)
    assert float(jnp.abs(parts["chemotaxis"][1:]).max()) == 0 and float(jnp.abs(parts["production"][:1]).max()) == 0


def test_jacobian_matches_finite_differences():
    with jax.enable_x64(True):
        model = GrayScott()
        t, u = simulate(model, jax.random.key(0), size=12, t_end=40, frames=3)
        res, theta = shooting_residuals(model, t, np.asarray(u), solver=Solver(dt=1.0))
        _, jac = _value_and_jacobian(res, model, theta)
        r = eqx.filter_jit(res)
        h = 1e-6 * jnp.abs(theta)
        fd = jnp.stack([(r(model, theta.at[i].add(h[i])) - r(model, theta.at[i].add(-h[i]))) / (2 * h[i])
                        for i in range(4)], -1)
        np.testing.assert_allclose(np.asarray(jac), np.asarray(fd), atol=1e-6 * float(jnp.abs(fd).max()))


def test_uncertainties_shrink_with_the_noise_and_cover_the_truth(gray_scott_data):
    """Acceptance: fits (the shared trainer, then Gauss–Newton polish) at 1% and 0.1% noise: the standard errors
    shrink about tenfold, and the true values lie within 3 standard errors."""
    t, clean, span = gray_scott_data
    truth = GrayScott()
    true = np.array([truth.parameters()[n] for n in truth.parameter_names])
    start = truth.replace(D_a=0.11, D_b=0.045, feed=0.0623 * 1.1, kill=0.06268 * 0.9)
    stds = {}
    for noise, seed in ((0.01, 11), (0.001, 12)):
        noisy = clean + noise * span[:, None, None] * np.asarray(jax.random.normal(jax.random.key(seed), clean.shape))
        fitted = fit(start, t, noisy, steps=60, batch_size=8, solver=SOLVER, progress=False, log_every=10**9).model
        unc = parameter_uncertainty(fitted, t, noisy, solver=SOLVER, refine=6)
        z = (unc.values - true) / unc.std
        print(f"noise {noise}:\n{unc.table(truth.parameters())}")
        assert np.all(np.abs(z) < 3), (noise, z)
        assert abs(unc.residual_std / noise - 1) < 0.05           # sigma-hat recovers the noise level
        stds[noise] = unc.std
    ratio = stds[0.01] / stds[0.001]
    assert np.all((ratio > 4) & (ratio < 25)), ratio


def test_robust_standard_errors_match_the_monte_carlo_spread(gray_scott_data):
    """Over 8 noise draws (1%), each fitted to convergence by Gauss–Newton, the spread of the estimates is
    2-3x the naive sigma^2 (J^T J)^-1 errors and matched by the cluster-robust ones."""
    t, clean, span = gray_scott_data
    truth = GrayScott()
    estimates, robust, naive = [], [], []
    for k in range(8):
        noisy = clean + 0.01 * span[:, None, None] * np.asarray(jax.random.normal(jax.random.key(100 + k), clean.shape))
        fitted = gauss_newton(truth, t, noisy, solver=SOLVER, iterations=2)
        unc = parameter_uncertainty(fitted, t, noisy, solver=SOLVER)
        estimates.append(unc.values); robust.append(unc.std); naive.append(unc.naive_std)
    spread = np.std(estimates, axis=0, ddof=1)
    robust_ratio = np.mean(robust, axis=0) / spread
    naive_ratio = np.mean(naive, axis=0) / spread
    print("robust / spread", robust_ratio.round(2), "naive / spread", naive_ratio.round(2))
    assert np.all((robust_ratio > 0.6) & (robust_ratio < 1.6)), robust_ratio   # 8 draws: spread known to ~25%
    assert np.all(naive_ratio < 0.75), naive_ratio


def test_fit_logs_inspection_figures(tmp_path):
    "A classic fit and a neural fit write their inspection figures to TensorBoard through train's callbacks."
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from dpattern.inspect.pde import figure_callback
    t, u = simulate(GrayScott(), jax.random.key(0), size=12, t_end=60, frames=4)
    fit(GrayScott(feed=0.06), t, u, steps=2, batch_size=2, solver=SOLVER, progress=False, log_every=2,
        out=tmp_path / "classic", callbacks=[figure_callback(t, u, SOLVER)])
    fit(NeuralRDA(3, width=4, degree=1, key=jax.random.key(0)), t, u, steps=2, window=2, batch_size=2, solver=SOLVER,
        progress=False, log_every=2, out=tmp_path / "neural", callbacks=[figure_callback(t, u, SOLVER)])
    classic = EventAccumulator(str(tmp_path / "classic" / "logs"), size_guidance={"images": 0}).Reload()
    neural = EventAccumulator(str(tmp_path / "neural" / "logs"), size_guidance={"images": 0}).Reload()
    assert {"inspect/uncertainty", "inspect/landscape"} <= set(classic.Tags()["images"])
    assert [e.step for e in classic.Images("inspect/uncertainty")] == [2]
    assert "inspect/std/feed" in classic.Tags()["scalars"]
    assert {"inspect/terms", "inspect/term_magnitudes", "inspect/coefficients"} <= set(neural.Tags()["images"])


def test_clear_errors():
    t, u = np.linspace(0, 10, 3), np.zeros((3, 2, 8, 8), np.float32)
    with pytest.raises(ValueError, match="no named physical parameters"):
        parameter_uncertainty(NeuralRDA(2, key=jax.random.key(0)), t, u)
    with pytest.raises(ValueError, match="the data has 3 channels but GrayScott has 2"):
        parameter_uncertainty(GrayScott(), t, np.zeros((3, 3, 8, 8), np.float32))
    with pytest.raises(TypeError, match="need a NeuralRDA or NeuralChemotaxis"):
        terms(GrayScott(), u[0])
