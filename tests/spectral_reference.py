"""An independent Gray–Scott solver in NumPy: Fourier pseudo-spectral in space, integrating-factor RK4 in time.

It shares nothing with dpattern (no stencils, no diffrax, no JAX): it stands for data that no finite-difference
grid made, for measuring the bias of a fit (tests/test_pde_discretisation.py, benchmarks/discretisation.py).

    a_t = D_a lap(a) - a b^2 + F (1 - a),    b_t = D_b lap(b) + a b^2 - (F + k) b

Diffusion is integrated exactly in Fourier space (the integrating factor exp(-D |k|^2 t)); the reaction is
evaluated on the grid and stepped by classical RK4 (Trefethen, Spectral Methods in MATLAB, program 27)."""
from __future__ import annotations

import numpy as np


def seeds(n: int, seed: int = 0, fraction: float = 0.1) -> np.ndarray:
    """Initial state `[2, n, n]`: (a, b) = (1/2, 1/4) on the top `fraction` of a smooth random field (blobs a few
    cells across), (1, 0) elsewhere, plus 1% uniform noise; lightly low-pass filtered so that the grid resolves it."""
    rng = np.random.default_rng(seed)
    k = 2 * np.pi * np.fft.fftfreq(n)
    k2 = k[:, None] ** 2 + k[None, :] ** 2
    z = np.real(np.fft.ifft2(np.fft.fft2(rng.random((n, n))) * np.exp(-4.0 * k2)))
    m = (z > np.quantile(z, 1 - fraction)).astype(float)
    u = np.stack([1 - 0.5 * m, 0.25 * m]) + 0.01 * rng.random((2, n, n))
    return np.real(np.fft.ifft2(np.fft.fft2(u) * np.exp(-0.25 * k2)))


def gray_scott(u0: np.ndarray, times, D_a: float = 0.1, D_b: float = 0.05, feed: float = 0.0623,
               kill: float = 0.06268, dx: float = 1.0, h: float = 1.0) -> np.ndarray:
    "The states `[T, 2, n, n]` at `times` (from `u0 [2, n, n]` at `times[0]`), steps of at most `h`."
    n = u0.shape[-1]
    ky, kx = 2 * np.pi * np.fft.fftfreq(n, dx), 2 * np.pi * np.fft.rfftfreq(n, dx)
    k2 = ky[:, None] ** 2 + kx[None, :] ** 2
    lin = -np.array([D_a, D_b])[:, None, None] * k2

    def reaction(vh):
        a, b = np.fft.irfft2(vh, s=(n, n))
        r = a * b * b
        return np.fft.rfft2(np.stack([-r + feed * (1 - a), r - (feed + kill) * b]))

    vh, out = np.fft.rfft2(np.asarray(u0, np.float64)), [np.array(u0, dtype=np.float64)]
    for t0, t1 in zip(times[:-1], times[1:]):
        steps = max(1, int(np.ceil((t1 - t0) / h - 1e-9)))
        dt = (t1 - t0) / steps
        e, e2 = np.exp(lin * dt / 2), np.exp(lin * dt)
        for _ in range(steps):
            a = dt * reaction(vh)
            b = dt * reaction(e * (vh + a / 2))
            c = dt * reaction(e * vh + b / 2)
            d = dt * reaction(e2 * vh + e * c)
            vh = e2 * vh + (e2 * a + 2 * e * (b + c) + d) / 6
        out.append(np.fft.irfft2(vh, s=(n, n)))
    return np.stack(out)
