"""Spatial operators against an independent reference (scipy.ndimage) and analytic fields."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage

from dpattern.core import operators as ops

SCIPY_MODE = {"periodic": "wrap", "reflect": "reflect", "replicate": "nearest", "zero": "constant"}


@pytest.mark.parametrize("boundary", ops.BOUNDARIES)
@pytest.mark.parametrize("scale", [1, 2, 3])
@pytest.mark.parametrize("name", ["grad_x", "grad_y", "laplacian", "average"])
def test_stencils_match_scipy_correlate(boundary, scale, name):
    u = np.random.default_rng(0).normal(size=(2, 13, 17)).astype(np.float32)
    k = ops.stencil(name, scale)
    (ours,) = ops.apply_stencils(jnp.asarray(u), [k], boundary)
    ref = np.stack([ndimage.correlate(a.astype(np.float64), k, mode=SCIPY_MODE[boundary], cval=0.0) for a in u])
    np.testing.assert_allclose(np.asarray(ours), ref, atol=2e-5)


def _field(n):
    dx = 2 * np.pi / n
    y, x = np.meshgrid(np.arange(n) * dx, np.arange(n) * dx, indexing="ij")
    return x, y, dx


def test_second_order_convergence_of_divergence_and_curl():
    errs = []
    with jax.enable_x64(True):
        for n in (16, 32, 64):
            x, y, dx = _field(n)
            v = jnp.asarray(np.stack([np.sin(x) * np.cos(y), np.cos(2 * x) * np.sin(y)]))
            div_true = np.cos(x) * np.cos(y) + np.cos(2 * x) * np.cos(y)
            curl_true = -2 * np.sin(2 * x) * np.sin(y) + np.sin(x) * np.sin(y)
            errs.append((np.abs(ops.divergence(v, dx) - div_true).max(), np.abs(ops.curl(v, dx) - curl_true).max()))
    for a, b in zip(errs, errs[1:]):
        assert 3.5 < a[0] / b[0] < 4.5 and 3.5 < a[1] / b[1] < 4.5, errs


def test_flux_diffusion_converges_and_reduces_to_laplacian():
    with jax.enable_x64(True):
        errs = []
        for n in (16, 32, 64):
            x, y, dx = _field(n)
            f = 2 + np.cos(x)
            g = np.sin(x) * np.sin(y)
            # d/dx (f g_x) + d/dy (f g_y)
            true = -np.sin(x) * np.cos(x) * np.sin(y) + f * (-np.sin(x) * np.sin(y)) + f * (-np.sin(x) * np.sin(y))
            errs.append(np.abs(ops.flux_diffusion(jnp.asarray(f), jnp.asarray(g), dx) - true).max())
        assert all(3.5 < a / b < 4.5 for a, b in zip(errs, errs[1:])), errs
    u = jnp.asarray(np.random.default_rng(1).normal(size=(9, 11)))
    five = ndimage.correlate(np.asarray(u), [[0, 1, 0], [1, -4, 1], [0, 1, 0]], mode="wrap")
    np.testing.assert_allclose(ops.flux_diffusion(jnp.ones_like(u), u), five, atol=1e-5)


def test_curl_of_gradient_vanishes_and_gradient_norm():
    u = jax.random.normal(jax.random.key(0), (20, 20))
    for k in (1, 2):
        assert float(jnp.abs(ops.curl(ops.gradient(u, scale=k), scale=k)).max()) < 1e-5
    y, x = np.mgrid[0:12, 0:12].astype(np.float32)
    np.testing.assert_allclose(ops.gradient_norm(jnp.asarray(3 * x + 4 * y), boundary="replicate")[3:-3, 3:-3], 5.0,
                               rtol=1e-5)
    # finite gradient where the field is flat
    g = jax.grad(lambda a: ops.gradient_norm(a * jnp.ones((5, 5))).sum())(1.0)
    assert np.isfinite(g)


def test_orientation_x_is_last_axis_y_is_rows():
    u = jnp.zeros((7, 7)).at[:, 4:].set(1.0)  # a step that rises to the right (x, axis -1)
    g = ops.gradient(u, boundary="replicate")
    assert float(g[0, 3, 3]) > 0 and float(jnp.abs(g[1]).max()) == 0
    g = ops.gradient(u.T, boundary="replicate")  # rises downwards (y, axis -2)
    assert float(g[1, 3, 3]) > 0 and float(jnp.abs(g[0]).max()) == 0


def test_bad_arguments_are_clear():
    with pytest.raises(ValueError, match="expected one of periodic"):
        ops.laplacian(jnp.zeros((5, 5)), boundary="circular")
    with pytest.raises(ValueError, match="integer >= 1"):
        ops.stencil("laplacian", 0)
    with pytest.raises(ValueError, match="vector field of shape"):
        ops.divergence(jnp.zeros((3, 5, 5)))
    with pytest.raises(ValueError, match="smaller than the 5x5 stencil"):
        ops.laplacian(jnp.zeros((4, 4)), scale=2)
