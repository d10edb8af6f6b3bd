"""Gradients of losses on agents with respect to the agent rule's parameters match finite differences (float64)."""
import equinox as eqx
import jax
import jax.numpy as jnp
import pytest

from dpattern.abm.agents import random_agents
from dpattern.abm.neural import NeuralChemotaxis, NeuralSlime
from dpattern.abm.sinkhorn import sinkhorn_divergence


def _random_rule(model, key, scale=0.7):
    params, static = model.partition()
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    params = jax.tree.unflatten(tree, [scale * jax.random.normal(k, x.shape, jnp.float64) for k, x in zip(keys, leaves)])
    return params, static


@pytest.mark.parametrize("kind,walls", [("chemotaxis", "reflect"), ("slime", "periodic")])
def test_rollout_gradient_matches_finite_differences(kind, walls):
    """A loss mixing the Sinkhorn divergence of the final positions to a target cloud and the final field
    (deposit, diffusion, decay, sensing all in the chain), through 6 steps with noisy turns and a memory."""
    g = 12
    with jax.enable_x64(True):
        cls = NeuralChemotaxis if kind == "chemotaxis" else NeuralSlime
        extra = dict(sensing_length=3.0) if kind == "chemotaxis" else dict(sensor_distance=2.5)
        model = cls(channels=2, hidden=5, memory=1, turn_noise=0.2, max_speed=1.5, walls=walls,
                    activation="tanh", key=jax.random.key(0), **extra)
        params, static = _random_rule(model, jax.random.key(1))
        start = random_agents(jax.random.key(2), 10, g, channels=2, memory=1, dtype=jnp.float64)
        target = jax.random.uniform(jax.random.key(3), (7, 2), jnp.float64)

        @jax.jit
        def loss(p):
            final, _ = eqx.combine(p, static).rollout(start, 6, jax.random.key(4))
            s = sinkhorn_divergence(final.positions / g, target, eps=0.02, tolerance=1e-12, max_iterations=20000)
            share = final.field[0, :, : g // 2].sum() / final.field[0].sum()
            return s + 0.1 * share + 0.01 * jnp.sum(final.field[1] ** 2)

        grad = jax.jit(jax.grad(loss))(params)
        for i in range(3):
            direction = jax.tree.map(lambda x: jax.random.normal(jax.random.key(10 + i), x.shape, x.dtype), params)
            h = 1e-6
            plus = jax.tree.map(lambda p, d: p + h * d, params, direction)
            minus = jax.tree.map(lambda p, d: p - h * d, params, direction)
            fd = float((loss(plus) - loss(minus)) / (2 * h))
            ad = float(sum(jnp.sum(a * d) for a, d in zip(jax.tree.leaves(grad), jax.tree.leaves(direction))))
            print(f"{kind} {walls}: autodiff {ad:.10g} finite differences {fd:.10g} relative {abs(ad - fd) / abs(fd):.2e}")
            assert abs(ad - fd) <= 1e-3 * abs(fd), (kind, walls, i, ad, fd)
            assert abs(fd) > 1e-6  # the loss really depends on the parameters
