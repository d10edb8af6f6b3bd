"""Overhead of scale-out on one machine: 4-way data parallel and 4-way spatial splitting against one device.

Each configuration runs in a fresh process (JAX fixes its device count at start-up; on a CPU the devices are
simulated with XLA_FLAGS=--xla_force_host_platform_device_count=N). Times are medians of warm repeats.
Ratios are sharded / one device (lower is better; 1.0 = no overhead). On a CPU all "devices" share the same
cores, so this measures the cost of the machinery (halo exchanges, all-reduces), not a speed-up; on a
machine with N GPUs the same script measures the real scaling.

    python benchmarks/distributed.py [--quick] [--devices 4] [--json FILE]
"""
import argparse
import json
import os
import subprocess
import sys
import textwrap

WORKER = textwrap.dedent(r"""
    import json, sys, time
    import jax, jax.numpy as jnp, numpy as np
    cfg = json.loads(sys.argv[1])
    n, quick = cfg["devices"], cfg["quick"]
    assert jax.device_count() >= n, jax.devices()

    def median_time(f, repeats):
        f()  # compile / warm up
        ts = []
        for _ in range(repeats):
            t = time.perf_counter(); f(); ts.append(time.perf_counter() - t)
        return float(np.median(ts))

    out = {}
    # --- data parallel: Gray-Scott multiple-shooting fit steps (batch split over devices)
    from dpattern.pde.classic import GrayScott
    from dpattern.pde.solver import solve
    from dpattern.pde.fit import fit
    size = 32 if quick else 64
    t = np.linspace(0, 80, 17)
    true = GrayScott()
    u = np.asarray(solve(true, true.initial_condition(jax.random.key(0), (size, size)), t))
    stamps = []
    steps = 6 if quick else 12
    fit(GrayScott(D_a=0.13, D_b=0.04), t, u, steps=steps, batch_size=16, key=jax.random.key(1), devices=n,
        progress=False, on_step=lambda i, l: stamps.append(time.perf_counter()))
    out["data parallel: Gray-Scott fit step, batch 16, %d²" % size] = float(np.median(np.diff(stamps[1:])))

    # --- spatial: one Gray-Scott solve on a grid split into n slabs of rows
    from dpattern.core.distributed import map_space, space_mesh, shard_space
    import diffrax
    from dpattern.pde.solver import Solver
    grid = 256 if quick else 512
    model = GrayScott()
    u0 = model.initial_condition(jax.random.key(2), (grid, grid))
    ts = jnp.linspace(0, 100, 3)
    solver = Solver(diffrax.Euler(), dt=1.0)
    if n == 1:
        f = jax.jit(lambda u: solver(model, u, ts))
    else:
        f = jax.jit(map_space(lambda u: solver(model, u, ts), space_mesh(n)))
    out["spatial (shard_map halo exchange): Gray-Scott %d², 100 Euler steps" % grid] = median_time(
        lambda: jax.block_until_ready(f(u0)), 3)
    if n > 1:  # the alternative we rejected: let XLA's SPMD partitioner split the grid from sharding annotations
        mesh = space_mesh(n)
        g = jax.jit(lambda u: solver(model, u, ts))
        us = shard_space(u0, mesh)
        out["spatial (sharding annotations): Gray-Scott %d², 100 Euler steps" % grid] = median_time(
            lambda: jax.block_until_ready(g(us)), 3)
    print("RESULT", json.dumps(out))
""")


def run(devices: int, quick: bool) -> dict:
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
    r = subprocess.run([sys.executable, "-c", WORKER, json.dumps({"devices": devices, "quick": quick})],
                       capture_output=True, text=True, env=env)
    if r.returncode:
        raise RuntimeError(r.stderr[-3000:])
    return json.loads(next(l for l in r.stdout.splitlines() if l.startswith("RESULT "))[7:])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smaller sizes")
    p.add_argument("--devices", type=int, default=4)
    p.add_argument("--json", help="also write the rows to this file")
    a = p.parse_args(argv)
    one, many = run(1, a.quick), run(a.devices, a.quick)
    rows = []
    for name, sec in many.items():
        base_name = name.replace("(sharding annotations)", "(shard_map halo exchange)")
        base = one[base_name]
        rows.append({"workload": f"{name} on {a.devices} devices", "dpattern_s": sec, "baseline": "1-device",
                     "baseline_s": base, "ratio": sec / base})
    w = max(len(r["workload"]) for r in rows)
    print(f"{'workload':<{w}}  {'sharded s':>9}  {'1 device s':>10}  {'ratio':>6}")
    for r in rows:
        print(f"{r['workload']:<{w}}  {r['dpattern_s']:9.3f}  {r['baseline_s']:10.3f}  {r['ratio']:6.2f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
