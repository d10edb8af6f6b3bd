"""Agent inspection: response curves against the rule evaluated directly, densities and correlations, the
refactored policy, and TensorBoard logging during shape-formation training."""
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dpattern.abm.agents import AgentState, random_agents
from dpattern.abm.neural import NeuralChemotaxis, NeuralSlime
from dpattern.inspect.abm import (density, density_field_correlation, feature_names, response_curves,
                                  rollout_from_random, sensed_features)


def _randomise(model, key, scale=1.0):
    params, static = model.partition()
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    return eqx.combine(jax.tree.unflatten(tree, [scale * jax.random.normal(k, x.shape) for k, x in zip(keys, leaves)]),
                       static)


def _mlp(model, z):
    "The neural agents' network written out in NumPy (an independent reference)."
    act = {"tanh": np.tanh, "relu": lambda x: np.maximum(x, 0)}[model.activation]
    h = act(np.tanh(z) @ np.asarray(model.network.w[0]) + np.asarray(model.network.b[0]))
    o = h @ np.asarray(model.network.w[1]) + np.asarray(model.network.b[1])
    sig = lambda x: 1 / (1 + np.exp(-x))
    return (model.max_turn * np.tanh(o[:, 1]), model.max_speed * sig(o[:, 0]),
            model.max_deposit * sig(o[:, 2:2 + model.channels]))


@pytest.mark.parametrize("cls", [NeuralSlime, NeuralChemotaxis])
def test_response_curves_are_the_rule_evaluated_along_the_sweep(cls):
    model = _randomise(cls(channels=2, hidden=8, activation="tanh", turn_noise=0.3, key=jax.random.key(0)),
                       jax.random.key(1))
    traj = rollout_from_random(model, 200, 24, 20, jax.random.key(2))
    feats, mem = sensed_features(model, traj)
    assert feats.shape == (traj.positions.shape[0] * 200, 6) and len(feature_names(model)) == 6
    curves = response_curves(model, feats, mem, points=9)
    for f in range(6):
        z = np.tile(curves["baseline"], (9, 1))
        z[:, f] = curves["grid"][f]
        turn, speed, deposit = _mlp(model, z)               # noise-free: the turning noise is left out
        np.testing.assert_allclose(curves["turn"][f], turn, atol=1e-5)
        np.testing.assert_allclose(curves["speed"][f], speed, atol=1e-5)
        np.testing.assert_allclose(curves["deposit"][f], deposit, atol=1e-5)
        lo, hi = np.quantile(feats[:, f], [0.01, 0.99])
        np.testing.assert_allclose(curves["grid"][f, [0, -1]], [lo, hi], rtol=1e-5, atol=1e-6)


def test_policy_is_unchanged_by_the_respond_refactor():
    "policy(state, key) = respond(features(state), memory, key), turning noise included."
    model = _randomise(NeuralChemotaxis(channels=2, memory=2, turn_noise=0.2, key=jax.random.key(0)), jax.random.key(1))
    state = random_agents(jax.random.key(2), 50, 16, channels=2, memory=2)
    state = eqx.tree_at(lambda s: s.field, state, jax.random.uniform(jax.random.key(3), state.field.shape))
    a = model.policy(state, jax.random.key(4))
    turn, speed, deposit = _mlp(model, np.concatenate([np.asarray(model.features(state)), np.zeros((50, 2))], 1))
    noise = 0.2 * np.asarray(jax.random.normal(jax.random.key(4), (50,)))
    # the reference ignores memory inputs only because they are zero here
    np.testing.assert_allclose(np.asarray(a[0]), turn + noise, atol=1e-5)
    np.testing.assert_allclose(np.asarray(a[1]), speed, atol=1e-5)


def test_density_and_correlation():
    g = 20
    pos = jnp.broadcast_to(jnp.array([[5.5, 5.5], [5.5, 5.5], [12.5, 3.5], [0.1, 19.9]]), (6, 4, 2))
    field = jnp.zeros((6, 2, g, g)).at[:, 0, 5, 5].set(3.0).at[:, 1].set(1.0)
    traj = AgentState(pos, jnp.zeros((6, 4)), jnp.zeros((6, 4, 0)), field)
    d = density(traj)
    assert d.shape == (g, g) and abs(d.sum() - 4) < 1e-5 and abs(d[5, 5] - 2) < 1e-6
    r = density_field_correlation(traj)
    assert r[0] > 0.8 and r[1] == 0.0                      # a constant field has no correlation


def test_formation_training_logs_inspection_figures(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from dpattern.abm.train import FormationTask, formation_agents
    from dpattern.core.train import default_optimiser, train
    task = FormationTask("horse", n_agents=48, size=32, steps=8, batch_size=1, eval_batch=1)
    from dpattern.inspect.abm import figure_callback
    # the task logs only its own image; inspection figures reach the run through train's callbacks
    train(formation_agents(32, hidden=8, key=jax.random.key(0)), task, 2, jax.random.key(1),
          optimiser=default_optimiser(2, 1e-2), out=tmp_path, log_every=2, progress=False,
          callbacks=[figure_callback(48, 32, 8)])
    acc = EventAccumulator(str(tmp_path / "logs"), size_guidance={"images": 0}).Reload()
    assert {"inspect/responses", "inspect/density_fields", "formation"} <= set(acc.Tags()["images"])
    assert "inspect/density_field_correlation/ch0" in acc.Tags()["scalars"]
