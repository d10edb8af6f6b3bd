"""A tiny model and task for testing the shared training loop (importable from test subprocesses)."""
import equinox as eqx
import jax
import jax.numpy as jnp

from dpattern.core.model import Model
from dpattern.core.operators import average
from dpattern.core.train import Task


class Mixer(Model):
    "Per-pixel channel mixing after a local average: y = W @ average(x) + b."

    channels: int = eqx.field(static=True)
    weight: jax.Array
    bias: jax.Array

    def __init__(self, channels: int = 3, *, key):
        self.channels = channels
        self.weight = jax.random.normal(key, (channels, channels)) * 0.1
        self.bias = jnp.zeros(channels)

    def __call__(self, x):
        return jnp.einsum("oc,...chw->...ohw", self.weight, average(x)) + self.bias[:, None, None]


class MixTask(Task):
    "Fit a Mixer to pairs (x, y) on one or several grid sizes (a list: one entry per size)."

    inputs: list
    targets: list

    def sample(self, state, key):
        keys = jax.random.split(key, len(self.inputs))
        out = []
        for k, x, y in zip(keys, self.inputs, self.targets):
            i = jax.random.choice(k, x.shape[0], (self.batch_size,), replace=False)
            out.append((x[i], y[i]))
        return out

    def loss(self, model, batch, key):
        per_size = jnp.stack([jnp.mean((model(x) - y) ** 2) for x, y in batch])
        return per_size.mean(), per_size


def make_task(sizes=(16,), n=16, batch_size=8, channels=3, seed=0):
    truth = Mixer(channels, key=jax.random.key(seed + 100))
    truth = eqx.tree_at(lambda m: m.weight, truth, truth.weight * 10)
    xs = [jax.random.uniform(jax.random.key(seed + i), (n, channels, s, s)) for i, s in enumerate(sizes)]
    return MixTask(batch_size=batch_size, inputs=xs, targets=[truth(x) for x in xs])
