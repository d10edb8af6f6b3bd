"""Where the NCA fast gradient's speed comes from: the training step with each optimisation taken out again.

Same workload as the NCA rows of `run.py` (16 channels, 64², batch 8, 128 hidden, 64 steps; value_and_grad
of an L2 loss on the final state). Each variant runs warm in this process, interleaved over several rounds;
the table gives the best round's median and the ratio to dpattern as shipped (lower is better).

    python benchmarks/nca_gradient.py [--quick] [--rounds N]

Variants:
- `masks for all steps at once`: the firing masks and index tables drawn for every step in one vectorised
  call (`vmap`) instead of 16 steps at a time (swaps `jax.lax.map` while the rollout is traced: this
  script's business only);
- `gradient="checkpoint"` / `"autodiff"`: the rollout's reference gradients (per-step `jax.checkpoint`,
  and plain autodiff of the scan storing every intermediate), through the public API.
"""
import argparse
import os
import sys


sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repo's dpattern
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import equinox as eqx  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from dpattern.nca.model import fast_rollout  # noqa: E402
from run import machine, median_time, nca_setup, nca_state  # noqa: E402


def all_at_once(f, xs, batch_size=None):
    "`jax.lax.map` without chunks: one vectorised call over all steps."
    return jax.vmap(f)(xs)


VARIANTS = {  # name: (gradient method, {attribute of jax.lax: replacement while tracing})
    "dpattern (as shipped)": ("fast", {}),
    "masks for all steps at once": ("fast", {"map": all_at_once}),
    'gradient="checkpoint"': ("checkpoint", {}),
    'gradient="autodiff"': ("autodiff", {}),
}


def final_state(model, x, steps, key, method):
    """The rollout's final state. The fast gradient calls `fast_rollout` directly (as `NCA.rollout` does,
    but outside its jit cache, so that each variant is traced afresh); the others go through the public API."""
    if method != "fast":
        return model.rollout(x, steps, key, gradient=method)
    keys = jax.random.split(key, steps)
    return jnp.moveaxis(fast_rollout(model, jnp.moveaxis(x, -3, -1), keys), -1, -3)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test, figures mean nothing")
    ap.add_argument("--rounds", type=int, default=4, help="interleaved rounds (default 4)")
    args = ap.parse_args(argv)
    batch, channels, size, hidden, steps = (2, 16, 16, 32, 8) if args.quick else (8, 16, 64, 128, 64)
    print(machine(), flush=True)
    m, _ = nca_setup(channels, hidden)
    x = nca_state(batch, channels, size)
    target = jax.random.uniform(jax.random.key(3), (batch, 4, size, size))
    p, static = m.partition()
    key = jax.random.key(5)

    fns = {}
    for name, (method, swaps) in VARIANTS.items():
        saved = {k: getattr(jax.lax, k) for k in swaps}
        for k, v in swaps.items():
            setattr(jax.lax, k, v)
        try:   # trace and compile now, while the swap is in place
            f = jax.jit(jax.value_and_grad(lambda p, k, method=method: jnp.mean(
                (final_state(eqx.combine(p, static), x, steps, k, method)[:, :4] - target) ** 2)))
            jax.block_until_ready(f(p, key))
        finally:
            for k, v in saved.items():
                setattr(jax.lax, k, v)
        fns[name] = f
    ref = fns["dpattern (as shipped)"](p, key)
    for name, f in fns.items():   # every variant computes the same loss and gradient
        out = f(p, key)
        err = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(jax.tree.leaves(out), jax.tree.leaves(ref)))
        scale = max(float(jnp.max(jnp.abs(b))) for b in jax.tree.leaves(ref))
        assert err <= 1e-4 * scale, f"{name}: gradient differs from dpattern's by {err:.2e}"
    roll = jax.jit(lambda p, k: final_state(eqx.combine(p, static), x, steps, k, "fast"))
    roll_all = jax.jit(lambda p, k: final_state(eqx.combine(p, static), x, steps, k, "fast"))
    jax.lax.map, lax_map = all_at_once, jax.lax.map
    try:
        jax.block_until_ready(roll_all(p, key))
    finally:
        jax.lax.map = lax_map
    times = {name: [] for name in fns}
    rolls, rolls_all = [], []
    for _ in range(max(1, args.rounds)):
        rolls.append(median_time(lambda: roll(p, key), 3))
        rolls_all.append(median_time(lambda: roll_all(p, key), 3))
        for name, f in fns.items():
            times[name].append(median_time(lambda: f(p, key), 3))
    best = {name: min(ts) for name, ts in times.items()}
    base = best["dpattern (as shipped)"]
    print(f"\nNCA training step, {channels} ch, {size}², batch {batch}, {hidden} hidden, {steps} steps "
          f"(rollout alone: {min(rolls):.4f} s)\n")
    print(f"{'variant':32s} {'seconds':>9s} {'vs shipped':>11s} {'vs rollout':>11s}")
    for name, t in best.items():
        print(f"{name:32s} {t:9.4f} {t / base:10.2f}x {t / min(rolls):10.2f}x")
    print(f"\nthe rollout alone with the masks for all steps at once: {min(rolls_all):.4f} s "
          f"({min(rolls_all) / min(rolls):.2f}x as shipped)")


if __name__ == "__main__":
    main()
