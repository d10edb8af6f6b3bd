"""Per-sample environments: channels held where each sample's own mask says, at what each sample holds,
through NCA and ABM rollouts, their gradients and their checkpoints."""
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dpattern.abm.agents import random_agents
from dpattern.abm.physarum import Physarum
from dpattern.abm.train import coordinate_channels
from dpattern.core.boundary import FixedChannels
from dpattern.core.model import load_model
from dpattern.nca.model import NCA

NBS = Path(__file__).resolve().parents[1] / "nbs"


def _geometries(n: int) -> jnp.ndarray:
    "Two held-region masks `[2, n, n]` (1: held): outside a disc, and outside a smaller ring."
    yy, xx = np.mgrid[:n, :n] - (n - 1) / 2
    r = np.hypot(yy, xx)
    return jnp.asarray(np.stack([r > 0.4 * n, (r < 0.15 * n) | (r > 0.3 * n)]), jnp.float32)


def _random_nca(channels: int, fixed, **kw) -> NCA:
    m = NCA(channels, alive_threshold=None, hidden=16, fixed=fixed, key=jax.random.key(0), **kw)
    return eqx.tree_at(lambda m: m.update.w2, m, 0.1 * jax.random.normal(jax.random.key(1), m.update.w2.shape))


@pytest.mark.parametrize("gradient", ["fast", "autodiff"])
def test_two_masks_in_one_batch_hold_each_sample_bitwise(gradient):
    held = _geometries(16)
    x0 = jax.random.uniform(jax.random.key(2), (2, 6, 16, 16)).at[:, 5].set(held)
    model = _random_nca(6, FixedChannels(range(5), mask_channel=5))
    x = x0
    for k in jax.random.split(jax.random.key(3), 4):           # 20 steps, in rollouts of 5
        x, _ = model.rollout(x, 5, k, gradient=gradient)
    mask = np.broadcast_to(np.asarray(held)[:, None] == 1, (2, 5, 16, 16))
    y, y0 = np.asarray(x[:, :5]), np.asarray(x0[:, :5])
    assert np.array_equal(y[mask], y0[mask])                   # bitwise, each sample its own geometry
    assert (y[~mask] != y0[~mask]).all()                       # every free cell moved
    assert np.array_equal(np.asarray(x[:, 5]), np.asarray(held))
    # the samples differ only by their geometry: swapping the masks swaps what is held
    assert not np.array_equal(mask[0], mask[1])


def test_state_carried_values_without_a_mask_hold_everywhere():
    x0 = jax.random.uniform(jax.random.key(4), (3, 5, 12, 12))     # each sample its own channel 4
    model = _random_nca(5, FixedChannels([4]), fire_rate=1.0)
    y, _ = model.rollout(x0, 6, jax.random.key(5))
    assert np.array_equal(np.asarray(y[:, 4]), np.asarray(x0[:, 4]))
    assert (np.asarray(y[:, :4]) != np.asarray(x0[:, :4])).all()


def test_fast_gradient_matches_autodiff_with_a_state_carried_environment():
    "Parameters and the initial state: the held channels pass their cotangent straight back in time."
    held = _geometries(12)
    x0 = jax.random.uniform(jax.random.key(6), (2, 6, 12, 12)).at[:, 5].set(held)
    model = _random_nca(6, FixedChannels([0, 1, 2, 3], mask_channel=5), fire_rate=0.5)
    params, static = model.partition()

    def loss(p, x, gradient):
        y, _ = eqx.combine(p, static).rollout(x, 6, jax.random.key(7), gradient=gradient)
        return jnp.mean(jnp.sin(3 * y) * jnp.arange(6.0)[:, None, None])

    ref = jax.grad(loss, argnums=(0, 1))(params, x0, "autodiff")
    fast = jax.grad(loss, argnums=(0, 1))(params, x0, "fast")
    for a, b in zip(jax.tree.leaves(fast), jax.tree.leaves(ref)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5 * max(1.0, float(jnp.abs(b).max())))
    assert float(jnp.abs(ref[1][:, :4] * held[:, None]).max()) > 0   # the held cells do get a gradient


def test_state_carried_environment_round_trips_and_old_checkpoints_load(tmp_path):
    model = _random_nca(6, FixedChannels(range(5), mask_channel=5))
    model.save(tmp_path / "m.dpt")
    back = NCA.load(tmp_path / "m.dpt")
    assert back.fixed.mask_channel == 5 and back.fixed.values is None and back.fixed.channels == (0, 1, 2, 3, 4)
    x = jax.random.uniform(jax.random.key(8), (2, 6, 12, 12)).at[:, 5].set(_geometries(12))
    assert np.array_equal(np.asarray(back.rollout(x, 4, jax.random.key(9))[0]),
                          np.asarray(model.rollout(x, 4, jax.random.key(9))[0]))
    # models saved before environments could come with the state (no mask_channel in their headers)
    assert load_model(NBS / "inspect" / "nca_logo.dpt").fixed is None
    env = load_model(NBS / "tutorials" / "abm_horse.dpt").environment
    assert env.mask_channel is None and not env.from_state and env.channels == (1, 2)
    np.testing.assert_array_equal(np.asarray(env.values), np.asarray(coordinate_channels(64).values))


def test_abm_field_keeps_each_swarms_own_environment():
    "A batch of two swarms whose fields carry different environments in channel 1, held where channel 2 says."
    size = 16
    held = _geometries(size)
    fields = jax.random.uniform(jax.random.key(10), (2, 3, size, size)).at[:, 2].set(held)
    swarms = [random_agents(jax.random.key(11 + i), 64, size, 3, field=fields[i]) for i in range(2)]
    batch = jax.tree.map(lambda *a: jnp.stack(a), *swarms)
    model = Physarum(channels=3, channel=0, environment=FixedChannels([0, 1], mask_channel=2))
    final, _ = model.rollout(batch, 10, jax.random.key(13))
    mask = np.broadcast_to(np.asarray(held)[:, None] == 1, (2, 2, size, size))
    f, f0 = np.asarray(final.field[:, :2]), np.asarray(fields[:, :2])
    assert np.array_equal(f[mask], f0[mask]) and np.array_equal(np.asarray(final.field[:, 2]), np.asarray(held))
    assert (f[~mask] != f0[~mask]).mean() > 0.9                # deposit, diffusion and decay act inside


def test_bad_state_carried_environments_are_refused_clearly():
    with pytest.raises(ValueError, match="mask channel 7 does not exist in a state with 6 channels"):
        NCA(6, fixed=FixedChannels([0], mask_channel=7), key=jax.random.key(0))
    with pytest.raises(ValueError, match="not both"):
        FixedChannels([0], where=jnp.ones((4, 4)), mask_channel=1)
    with pytest.raises(ValueError, match="pass the state before the step as before="):
        FixedChannels([0])(jnp.ones((2, 3, 4, 4)))
