"""Where the NCA fast gradient's speed comes from: the training step with each optimisation taken out again.

Same workload as the NCA rows of `run.py` (16 channels, 64², batch 8, 128 hidden, 64 steps; value_and_grad
of an L2 loss on the final state). Each variant runs warm in this process, interleaved over several rounds;
the table gives the best round's median and the ratio to dpattern as shipped (lower is better).

    python benchmarks/nca_gradient.py [--quick] [--rounds N]

Variants:
- `masks for all steps at once`: the firing masks and index tables drawn for every step in one vectorised
  call (`vmap`) instead of 16 steps at a time (swaps `jax.lax.map` while the rollout is traced: this
  script's business only);
- `plain dense layers`: the update network pulled back through its plain layers (`dense`) instead of
  `dense_rows`, whose weight gradient is laid out for XLA's CPU matrix products;
- `gradient="checkpoint"` / `"autodiff"`: the rollout's reference gradients (per-step `jax.checkpoint`,
  and plain autodiff of the scan storing every intermediate), through the public API.

`--profile` then also traces the shipped rollout and training step (`jax.profiler`) and prints where their
time goes, by kind of XLA operation (matrix products, gathers, stencils, ...), and the minor page faults
per call: XLA allocates a call's temporaries afresh each time, so the states the training step stores are
written to memory the kernel must first map in.
"""
import argparse
import collections
import glob
import gzip
import json
import os
import resource
import sys
import tempfile


sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repo's dpattern
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import equinox as eqx  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import dpattern.nca.fast_gradient as fast_gradient  # noqa: E402
from dpattern.core.mlp import dense  # noqa: E402
from dpattern.nca.fast_gradient import fast_rollout  # noqa: E402
from run import machine, median_time, nca_setup, nca_state  # noqa: E402


def all_at_once(f, xs, batch_size=None):
    "`jax.lax.map` without chunks: one vectorised call over all steps."
    return jax.vmap(f)(xs)


VARIANTS = {  # name: (gradient method, {(module, attribute): replacement while tracing})
    "dpattern (as shipped)": ("fast", {}),
    "masks for all steps at once": ("fast", {(jax.lax, "map"): all_at_once}),
    "plain dense layers": ("fast", {(fast_gradient, "dense_rows"): dense}),
    'gradient="checkpoint"': ("checkpoint", {}),
    'gradient="autodiff"': ("autodiff", {}),
}


def kind(op: str) -> str:
    "The kind of an XLA CPU operation, from its name in the profile."
    for key, name in (("ynn", "matrix products"), ("dot", "matrix products"), ("gather", "gathers and scatters"),
                      ("slice_concatenate", "stencils (padding)"), ("add_add", "stencils (sums)"),
                      ("dynamic-update-slice", "storing states"), ("broadcast", "elementwise and fills"),
                      ("select", "elementwise and fills"), ("multiply", "elementwise and fills")):
        if key in op:
            return name
    return "other"


def profile(f, calls=3):
    "Seconds per call by kind of operation (summed over both threads, so they can exceed the wall time)."
    jax.block_until_ready(f())
    with tempfile.TemporaryDirectory() as d:
        with jax.profiler.trace(d, create_perfetto_trace=True):
            for _ in range(calls):
                jax.block_until_ready(f())
        (path,) = glob.glob(os.path.join(d, "plugins", "profile", "*", "perfetto_trace.json.gz"))
        events = json.load(gzip.open(path))
    events = events["traceEvents"] if isinstance(events, dict) else events
    skip = ("Thunk", "Pjit", "$", "PjRt", "Await", "Threadpool", "while")
    by_kind = collections.Counter()
    for e in events:
        if e.get("ph") == "X" and not any(s in e["name"] for s in skip):
            by_kind[kind(e["name"])] += e.get("dur", 0) / 1e6 / calls
    return by_kind


def page_faults(f, calls=3):
    "Minor page faults per call."
    jax.block_until_ready(f())
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(calls):
        jax.block_until_ready(f())
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / calls


def final_state(model, x, steps, key, method):
    """The rollout's final state. The fast gradient calls `fast_rollout` directly (as `NCA.rollout` does,
    but outside its jit cache, so that each variant is traced afresh); the others go through the public API."""
    if method != "fast":
        return model.rollout(x, steps, key, gradient=method)[0]
    keys = jax.random.split(key, steps)
    return jnp.moveaxis(fast_rollout(model, jnp.moveaxis(x, -3, -1), keys), -1, -3)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test, figures mean nothing")
    ap.add_argument("--rounds", type=int, default=4, help="interleaved rounds (default 4)")
    ap.add_argument("--profile", action="store_true", help="also print where the time goes, by kind of operation")
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
        saved = {(obj, k): getattr(obj, k) for obj, k in swaps}
        for (obj, k), v in swaps.items():
            setattr(obj, k, v)
        try:   # trace and compile now, while the swap is in place
            f = jax.jit(jax.value_and_grad(lambda p, k, method=method: jnp.mean(
                (final_state(eqx.combine(p, static), x, steps, k, method)[:, :4] - target) ** 2)))
            jax.block_until_ready(f(p, key))
        finally:
            for (obj, k), v in saved.items():
                setattr(obj, k, v)
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
    if not args.profile:
        return
    step = fns["dpattern (as shipped)"]
    stored = steps * x.size * x.dtype.itemsize
    print(f"\nminor page faults per call: rollout {page_faults(lambda: roll(p, key)):.0f}, training step "
          f"{page_faults(lambda: step(p, key)):.0f} (the stored states: {stored / 2 ** 20:.0f} MiB = "
          f"{stored // resource.getpagesize()} pages)")
    # what fresh memory costs: filling an array of the stored states' size, new each call vs reused (donated)
    fill = jax.jit(lambda a: a + 1.0)
    reuse = jax.jit(lambda a: a + 1.0, donate_argnums=0)
    buf = [jnp.zeros(steps * x.size, x.dtype)]

    def refill():
        buf[0] = reuse(buf[0])
        return buf[0]
    fresh, reused = median_time(lambda: fill(buf[0]), 9), median_time(refill, 9)
    print(f"writing {stored / 2 ** 20:.0f} MiB: {fresh:.4f} s into new memory, {reused:.4f} s into reused memory")
    kinds = {"rollout": profile(lambda: roll(p, key)), "training step": profile(lambda: step(p, key))}
    print(f"\ntime by kind of operation, seconds per call (both threads summed)\n")
    print(f"{'kind':24s} {'rollout':>9s} {'training':>9s} {'ratio':>7s}")
    for k in sorted(set(kinds["rollout"]) | set(kinds["training step"]), key=lambda k: -kinds["training step"][k]):
        r, t = kinds["rollout"][k], kinds["training step"][k]
        print(f"{k:24s} {r:9.4f} {t:9.4f} {t / r if r else float('inf'):6.1f}x")
    r, t = sum(kinds["rollout"].values()), sum(kinds["training step"].values())
    print(f"{'all':24s} {r:9.4f} {t:9.4f} {t / r:6.1f}x")


if __name__ == "__main__":
    main()
