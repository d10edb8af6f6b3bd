"""Classic models: conservation laws and the Fisher-KPP front speed."""
import jax
import jax.numpy as jnp
import numpy as np

from dpattern.pde.classic import CahnHilliard, FisherKPP, HillenPainter
from dpattern.pde.solver import solve


def test_cahn_hilliard_conserves_mass():
    ch = CahnHilliard()
    u0 = ch.initial_condition(jax.random.key(0), (48, 48), mean=0.3)
    ts = np.linspace(0, 5000, 11)
    ys = np.asarray(solve(ch, u0, ts, dt=0.5), np.float64)
    mass = ys.sum(axis=(1, 2, 3))
    assert np.abs(ys[-1]).mean() > 0.7                     # it did phase-separate
    drift = np.abs(mass - mass[0]).max() / abs(mass[0])
    assert drift < 1e-5, drift


def test_chemotaxis_without_growth_conserves_cells():
    hp = HillenPainter(r=0.0)
    u0 = hp.initial_condition(jax.random.key(1), (32, 32))
    ys = np.asarray(solve(hp, u0, np.linspace(0, 20, 3), dt=0.01), np.float64)
    cells = ys[:, 0].sum(axis=(1, 2))
    assert ys[-1, 0].max() > 1.2 * ys[0, 0].max()           # cells moved (aggregating)
    assert np.abs(cells - cells[0]).max() / cells[0] < 1e-5


def _front(u, dx):
    "Position where the profile u(x) (decreasing) crosses 1/2, by linear interpolation."
    i = int(np.argmax(u < 0.5))
    return dx * (i - 1 + (u[i - 1] - 0.5) / (u[i - 1] - u[i]))


def test_fisher_kpp_front_speed():
    D, r, dx = 1.0, 1.0, 0.5
    n = 400
    x = np.arange(n) * dx
    u0 = jnp.asarray(np.broadcast_to((x < 5.0).astype(np.float32), (1, 4, n)))
    ts = np.linspace(20, 60, 9)
    ys = np.asarray(solve(FisherKPP(D, r, dx=dx, boundary="reflect"), u0, np.concatenate([[0.0], ts]), dt=0.02))
    fronts = [_front(y[0, 0], dx) for y in ys[1:]]
    speed = np.polyfit(ts, fronts, 1)[0]
    assert fronts[-1] < x[-1] - 20                           # the front stayed inside the domain
    assert abs(speed / (2 * np.sqrt(D * r)) - 1) < 0.05, speed
