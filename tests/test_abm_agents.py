"""Agents and fields: walls for any step size, and the mass bookkeeping of deposit, diffusion and decay."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dpattern.abm.agents import apply_walls, fold, random_agents, reflect_headings, splat, wrap
from dpattern.abm.physarum import Physarum

STEP_SIZES = [0.37, 7.9, 16.0, 31.7, 100.1]  # G = 16: from a fraction of a cell to six domain lengths


def _bounce(x, v, size):
    "Reference: reflect one crossing at a time until inside; return position and velocity sign."
    x, s = x + v, 1.0
    while x < 0 or x > size:
        x, s = (-x, -s) if x < 0 else (2 * size - x, -s)
    return x, s


@pytest.mark.parametrize("step", STEP_SIZES)
def test_walls_any_step_size(step):
    rng = np.random.default_rng(int(step * 100))
    x = rng.uniform(0, 16, (300, 2))
    v = step * rng.normal(size=(300, 2))
    with jax.enable_x64(True):
        p, s = fold(jnp.asarray(x + v), 16.0)
        w = wrap(jnp.asarray(x + v), 16.0)
    ref = np.array([[_bounce(a, b, 16.0) for a, b in zip(xi, vi)] for xi, vi in zip(x, v)])
    np.testing.assert_allclose(np.asarray(p), ref[..., 0], atol=1e-9)
    np.testing.assert_array_equal(np.asarray(s), ref[..., 1])
    assert ((np.asarray(p) >= 0) & (np.asarray(p) <= 16)).all()
    np.testing.assert_allclose(np.asarray(w), np.mod(x + v, 16.0), atol=1e-9)
    assert ((np.asarray(w) >= 0) & (np.asarray(w) < 16)).all()


@pytest.mark.parametrize("walls", ["periodic", "reflect"])
def test_agents_move_exactly_for_any_step_size(walls):
    """Agents that never turn (blind Physarum) move on straight lines: on a torus the position after k steps
    is the start plus k steps modulo G; with mirrors it is the straight unfolded path folded back (the
    reflected heading carries the next step the mirrored way). Float64, speeds up to six domain lengths."""
    g, k = 16, 9
    with jax.enable_x64(True):
        start = random_agents(jax.random.key(0), 200, g, dtype=jnp.float64)
        direction = jnp.stack([jnp.cos(start.headings), jnp.sin(start.headings)], -1)
        for step in (0.37, 16.0, 100.1):
            model = Physarum(sensor_distance=0.0, step_size=step, walls=walls)
            final, traj = model.rollout(start, k, jax.random.key(1), every=1)
            straight = start.positions + k * step * direction
            expected = wrap(straight, g) if walls == "periodic" else fold(straight, g)[0]
            diff = np.abs(np.asarray(final.positions - expected))
            if walls == "periodic":
                diff = np.minimum(diff, g - diff)  # a point on the seam may sit at 0 or at G
            assert diff.max() < 1e-8, (step, diff.max())
            lo, hi = float(traj.positions.min()), float(traj.positions.max())
            assert lo >= 0 and (hi < g if walls == "periodic" else hi <= g), (step, lo, hi)
            # the speed is kept: every step moves exactly `step` along the (unfolded) path
            if walls == "reflect":
                signs = fold(straight, g)[1]
                h = reflect_headings(start.headings, signs)
                np.testing.assert_allclose(np.cos(final.headings), np.cos(h), atol=1e-9)
                np.testing.assert_allclose(np.sin(final.headings), np.sin(h), atol=1e-9)


def test_apply_walls_periodic_signs_are_one():
    p, s = apply_walls(jnp.array([[-40.5, 77.0]]), 16, "periodic")
    np.testing.assert_array_equal(np.asarray(s), 1.0)
    np.testing.assert_allclose(np.asarray(p), [[7.5, 13.0]], atol=1e-5)


@pytest.mark.parametrize("walls", ["periodic", "reflect"])
def test_mass_bookkeeping(walls):
    """Total field mass after T steps equals the analytic sum of deposits and decay,
    M_T = sum_t N m (1 - delta)^(T - t), to 1e-5 relative (float32 state)."""
    n, g, m, delta, steps = 3000, 64, 5.0, 0.07, 60
    model = Physarum(deposit=m, decay=delta, diffusion=0.3, walls=walls, step_size=1.3)
    start = random_agents(jax.random.key(0), n, g)
    final, traj = jax.jit(lambda s, k: model.rollout(s, steps, k, every=10))(start, jax.random.key(1))
    for i, field in enumerate(traj.field):
        t = 10 * i
        expected = sum(n * m * (1 - delta) ** (t - s) for s in range(t))
        total = float(jnp.sum(field))
        if t == 0:
            assert total == 0
        else:
            assert abs(total - expected) <= 1e-5 * expected, (t, total, expected)
    assert float(final.field.min()) >= 0  # diffusion at D <= 1/3 keeps concentrations non-negative


def test_splat_conserves_mass_near_walls():
    pts = jnp.array([[0.0, 0.0], [16.0, 16.0], [0.2, 15.9], [15.99, 0.01], [8.0, 8.0]])
    for walls in ("periodic", "reflect"):
        field = splat(pts, jnp.arange(1.0, 6.0), 16, walls)
        assert abs(float(field.sum()) - 15.0) < 1e-5
