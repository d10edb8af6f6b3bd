"""NCA models: per-cell stochastic firing, alive masking, and save/load of every variant.

(The fast rollout gradient is checked against autodiff for every update network in nbs/nca/03_fast_gradient.ipynb.)"""
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dpattern.core.boundary import FixedChannels
from dpattern.core.model import load_model
from dpattern.nca.model import NCA, seed_state


def _constant_update(model, value=1.0):
    "The same NCA with an update network that proposes +value in every channel of every cell."
    return eqx.tree_at(lambda m: m.update.b2, model, jnp.full(model.update.b2.shape, value))


@pytest.mark.parametrize("p", [0.2, 0.5, 0.9])
def test_firing_is_per_cell_with_the_fire_rate(p):
    model = _constant_update(NCA(12, fire_rate=p, alive_threshold=None, key=jax.random.key(0)))
    x = jnp.zeros((8, 12, 40, 40))
    y = model(x, jax.random.key(int(p * 100)))
    changed = np.asarray(y != x)                                # [B, C, H, W]
    per_cell = changed.any(axis=1)
    # all channels of a cell update together
    assert (changed.all(axis=1) == per_cell).all()
    n = per_cell.size
    sigma = np.sqrt(p * (1 - p) / n)
    assert abs(per_cell.mean() - p) < 3 * sigma, (per_cell.mean(), p, sigma)
    # and every cell that fired changed by exactly the proposed update
    np.testing.assert_allclose(np.asarray(y)[changed], 1.0)


def test_firing_masks_differ_between_steps_and_keys():
    model = _constant_update(NCA(4, fire_rate=0.5, alive_threshold=None, key=jax.random.key(0)))
    x = jnp.zeros((4, 16, 16))
    a, b = model(x, jax.random.key(1)), model(x, jax.random.key(2))
    assert (a == model(x, jax.random.key(1))).all()             # same key, same mask
    assert not (a == b).all()
    _, traj = model.rollout(x, 6, jax.random.key(3), every=1)
    counts = np.asarray(traj[-1, 0])                            # times each cell fired in 6 steps
    assert counts.min() >= 0 and counts.max() <= 6 and 2 < counts.mean() < 4


def test_alive_masking_confines_growth_to_neighbours_of_live_cells():
    model = _constant_update(NCA(8, fire_rate=1.0, alive_threshold=0.1, key=jax.random.key(0)))
    x = seed_state(8, 21)
    for steps in (1, 3, 5):
        y, _ = model.rollout(x, steps, jax.random.key(0))
        alive = np.asarray(y[3] > 0)
        rows, cols = np.nonzero(alive)
        assert rows.min() == 10 - steps and rows.max() == 10 + steps    # one ring per step
        assert cols.min() == 10 - steps and cols.max() == 10 + steps
    # cells whose neighbourhood is dead are emptied even if the network proposes a change
    dead = _constant_update(NCA(8, fire_rate=1.0, key=jax.random.key(0)), 0.05)
    assert (dead(jnp.zeros((8, 9, 9)), jax.random.key(0)) == 0).all()


VARIANTS = [
    dict(),
    dict(update="gated"),
    dict(update="kan", hidden=8),
    dict(perception="isotropic"),
    dict(perception=("identity", "grad_norm", "laplacian", "average"), kernel_scale=2),
    dict(alive_threshold=None, fire_rate=1.0, boundary="zero", activation="tanh"),
    dict(update="gated", fixed="env"),
]


@pytest.mark.parametrize("kw", VARIANTS, ids=lambda kw: "-".join(f"{k}={v}" for k, v in kw.items()) or "default")
def test_every_variant_constructs_runs_saves_and_loads(kw, tmp_path):
    kw = dict(kw)
    if kw.get("fixed") == "env":
        kw["fixed"] = FixedChannels([9], jnp.linspace(0, 1, 20)[None, None].repeat(20, 1))
    model = NCA(10, key=jax.random.key(1), **kw)
    # give the zero-initialised output layer some weight so that the rollout does something
    w2 = model.update.w2
    model = eqx.tree_at(lambda m: m.update.w2, model, 0.05 * jax.random.normal(jax.random.key(2), w2.shape))
    x = jnp.zeros((2, 10, 20, 20)).at[:, 3:, 10, 10].set(1.0)
    y, _ = model.rollout(x, 5, jax.random.key(3))
    assert y.shape == x.shape and np.isfinite(np.asarray(y)).all()
    assert not (y == x).all()
    path = model.save(tmp_path / "nca.dpt")
    for back in (NCA.load(path), load_model(path)):
        assert type(back) is NCA and type(back.update) is type(model.update)
        assert back.hyperparams(encoded=True) == model.hyperparams(encoded=True)
        np.testing.assert_array_equal(back.rollout(x, 5, jax.random.key(3))[0], y)
