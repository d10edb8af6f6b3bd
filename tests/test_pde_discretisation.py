"""Fitting data that no grid made: against an independent NumPy spectral solver (tests/spectral_reference.py),
the recommended discretisation recovers Gray–Scott's parameters, and the default 9-point stencil shows its bias."""
import jax
import numpy as np
import pytest

from spectral_reference import gray_scott, seeds
from dpattern.core.operators import NinePoint, Spectral
from dpattern.pde import GrayScott, fit, fit_step, recommended_laplacian

TRUE = dict(D_a=0.1, D_b=0.05, feed=0.0623, kill=0.06268)
START = dict(D_a=0.11, D_b=0.045, feed=0.0623 * 1.1, kill=0.06268 * 0.9)    # 10% off


@pytest.fixture(scope="module")
def reference():
    "A 48² spot pattern from seeds to t = 1600, frames every 20 (float32, as a data file would hold it)."
    t = np.linspace(0.0, 1600.0, 81)
    return t, gray_scott(seeds(48, seed=1), t, **TRUE, h=0.5).astype(np.float32)


def fitted_errors(laplacian, t, u) -> dict:
    "Relative errors after fitting with `laplacian` and the default solver of the fit (Heun at `fit_step`)."
    result = fit(GrayScott(**START, laplacian=laplacian), t, u, steps=150, key=jax.random.key(0), batch_size=8,
                 progress=False)
    got = result.model.parameters()
    return {k: got[k] / v - 1 for k, v in TRUE.items()}


def test_recommended_setup_recovers_a_spectral_solvers_parameters(reference):
    t, u = reference
    assert float(u[-1, 1].max()) > 0.3, "the reference should hold spots"
    assert recommended_laplacian("periodic") == Spectral()
    assert fit_step(GrayScott(laplacian=Spectral())) == 0.5 and fit_step(GrayScott()) == 1.0
    spectral = fitted_errors(recommended_laplacian("periodic"), t, u)
    nine = fitted_errors(NinePoint(), t, u)                   # every PDE's default discretisation
    print({k: f"{100 * v:+.2f}%" for k, v in spectral.items()}, {k: f"{100 * v:+.2f}%" for k, v in nine.items()})
    assert abs(spectral["D_a"]) < 0.02 and abs(spectral["D_b"]) < 0.02, spectral
    assert abs(spectral["feed"]) < 0.01 and abs(spectral["kill"]) < 0.01, spectral
    # the 9-point stencil underestimates |k|^2, so the fit makes up for it with larger diffusion coefficients
    assert nine["D_a"] > 0.02 and nine["D_b"] > 0.02, nine
    assert min(nine["D_a"], nine["D_b"]) > 3 * max(abs(spectral["D_a"]), abs(spectral["D_b"])), (nine, spectral)
