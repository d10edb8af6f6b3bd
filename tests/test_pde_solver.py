"""PDE solver: analytic decay, a NumPy reference for Gray-Scott, gradients, adjoints and failures."""
import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dpattern.pde.classic import GrayScott
from dpattern.pde.solver import Heat, SolveError, Solver, solve


def test_heat_mode_decays_at_the_analytic_rate():
    with jax.enable_x64(True):
        n, dx, D, t_end = 128, 1.0, 0.5, 40.0
        x = jnp.arange(n) * dx
        k = 2 * np.pi / (n * dx)
        u0 = jnp.broadcast_to(jnp.cos(k * x), (1, 4, n))
        ys = solve(Heat(D, dx), u0, np.array([0.0, t_end]), solver=diffrax.Tsit5(),
                   stepsize_controller=diffrax.PIDController(rtol=1e-10, atol=1e-12))
        amp = float(jnp.sum(ys[-1, 0, 0] * jnp.cos(k * x)) / jnp.sum(jnp.cos(k * x) ** 2))
        rate = -np.log(amp) / t_end
        semi_discrete = D * 4 / dx**2 * np.sin(k * dx / 2) ** 2
        assert abs(rate / semi_discrete - 1) < 1e-8
        assert abs(rate / (D * k**2) - 1) < 1e-3


def _numpy_gray_scott(u, p, t_end, dt):
    "Heun steps of Gray-Scott with a 9-point Laplacian built from np.roll (periodic), independent of dpattern."
    D_a, D_b, F, k = p

    def lap(f):
        edge = sum(np.roll(f, s, axis=a) for s in (1, -1) for a in (0, 1))
        corner = sum(np.roll(np.roll(f, s1, 0), s2, 1) for s1 in (1, -1) for s2 in (1, -1))
        return 0.5 * edge + 0.25 * corner - 3.0 * f

    def rhs(u):
        a, b = u
        r = a * b * b
        return np.stack([D_a * lap(a) - r + F * (1 - a), D_b * lap(b) + r - (F + k) * b])

    for _ in range(int(round(t_end / dt))):
        k1 = rhs(u)
        k2 = rhs(u + dt * k1)
        u = u + 0.5 * dt * (k1 + k2)
    return u


def test_gray_scott_matches_a_numpy_reference():
    p = (0.1, 0.05, 0.0623, 0.06268)
    with jax.enable_x64(True):
        gs = GrayScott(*p)
        u0 = np.asarray(gs.initial_condition(jax.random.key(0), (24, 24)), np.float64)
        ours = np.asarray(solve(gs, jnp.asarray(u0), np.array([0.0, 200.0]), solver=diffrax.Tsit5(),
                                stepsize_controller=diffrax.PIDController(rtol=1e-8, atol=1e-10))[-1])
    ref = _numpy_gray_scott(u0, p, 200.0, 0.02)
    rel = np.linalg.norm(ours - ref) / np.linalg.norm(ref)
    assert np.abs(ref - u0).max() > 0.1        # the state really changed
    assert rel < 1e-3, rel


def test_gradient_matches_central_differences_in_float64():
    with jax.enable_x64(True):
        gs = GrayScott()
        u0 = gs.initial_condition(jax.random.key(1), (12, 12))
        target = solve(gs, u0, np.array([0.0, 30.0]), dt=0.5)[-1]

        def loss(theta):
            m = gs.replace(D_a=theta[0], D_b=theta[1], feed=theta[2], kill=theta[3])
            return jnp.mean((solve(m, u0, np.array([0.0, 30.0]), dt=0.5)[-1] - 0.9 * target) ** 2)

        theta = jnp.array([0.11, 0.045, 0.06, 0.065])
        g = jax.grad(loss)(theta)
        fd = []
        for i in range(4):
            h = 1e-6 * float(theta[i])
            e = jnp.zeros(4).at[i].set(h)
            fd.append((loss(theta + e) - loss(theta - e)) / (2 * h))
        np.testing.assert_allclose(np.asarray(g), np.asarray(fd), rtol=1e-3)


def test_adjoints_agree():
    u0 = Heat().initial_condition(jax.random.key(0), (12, 12))
    with jax.enable_x64(True):
        def loss(D, adjoint):
            ys = Solver(dt=0.1, adjoint=adjoint)(Heat(D), u0.astype(D.dtype), np.linspace(0, 2, 5))
            return jnp.mean(ys[-1] ** 2)
        D = jnp.array(0.3)
        g = jax.grad(lambda d: loss(d, diffrax.RecursiveCheckpointAdjoint()))(D)
        np.testing.assert_allclose(jax.grad(lambda d: loss(d, diffrax.DirectAdjoint()))(D), g, rtol=1e-10)
        np.testing.assert_allclose(jax.jacfwd(lambda d: loss(d, diffrax.ForwardMode()))(D), g, rtol=1e-10)


def test_failures_are_loud():
    u0 = Heat().initial_condition(jax.random.key(0), (12, 12))
    with pytest.raises(SolveError, match="non-finite"):
        solve(Heat(1.0), u0, np.linspace(0, 200, 3), solver=diffrax.Euler(), dt=1.0)
    with pytest.raises(SolveError, match="step budget"):
        solve(Heat(1.0), u0, np.linspace(0, 50, 3), dt=0.1, max_steps=10)
    with pytest.raises(SolveError, match="stopped early"):
        solve(Heat(1.0), u0, np.linspace(0, 50, 3), stepsize_controller=diffrax.PIDController(rtol=1e-4, atol=1e-6),
              max_steps=3)
    with pytest.raises(ValueError, match="must be >= 0"):
        Heat(-0.1)
    with pytest.raises(ValueError, match="3 channels but GrayScott has 2"):
        solve(GrayScott(), jnp.zeros((3, 8, 8)), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="non-finite"):
        solve(GrayScott(), jnp.full((2, 8, 8), jnp.nan), np.array([0.0, 1.0]))
