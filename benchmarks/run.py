"""dpattern against its peers (CAX, exponax), hand-written plain JAX and the hardware limit.

Every workload runs warm (one call to compile and warm up, then the median of several timed calls) and
prints one row: workload, dpattern seconds, baseline name, baseline seconds, ratio = dpattern / baseline
(lower is better). Baselines run in this process: CAX and exponax when installed (the optional `bench`
extra; their rows are skipped with a note otherwise), and a plain-JAX version of the same computation,
written out by hand, always. The peak-memory row runs in fresh processes and is in GB, not seconds.

    python benchmarks/run.py [--quick] [--json FILE] [--only NAME ...]

`--quick` shrinks every size so that the whole run is a smoke test (CI); its figures mean nothing.
"""
import argparse
import json
import math
import os
import platform
import subprocess
import sys
import textwrap
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repo's dpattern

import diffrax  # noqa: E402
import equinox as eqx  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402


def median_time(f, repeats: int, budget: float = 20.0) -> float:
    """Median wall time of `f()` over `repeats` calls, after one call to compile and warm up; a slow
    workload stops early once the timed calls have taken `budget` seconds (at least one call)."""
    jax.block_until_ready(f())
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(f())
        ts.append(time.perf_counter() - t)
        if sum(ts) > budget:
            break
    return float(np.median(ts))


def row(workload, dpattern_s, baseline, baseline_s):
    return {"workload": workload, "dpattern_s": float(dpattern_s), "baseline": baseline,
            "baseline_s": float(baseline_s), "ratio": float(dpattern_s) / float(baseline_s)}


def note(msg):
    print(f"  note: {msg}", flush=True)


# =================================================================================================== NCA
SOBEL_X = np.outer([1, 2, 1], [-1, 0, 1]).astype(np.float32) / 8.0   # [dy, dx], as dpattern's grad_x
SOBEL_Y = SOBEL_X.T.copy()


def bernoulli_fire(fire_rate):
    "Hand-written firing: one Bernoulli draw per cell, `[B, H, W, 1]`."
    return lambda key, shape: jax.random.bernoulli(key, fire_rate, shape[:-1] + (1,)).astype(jnp.float32)


def plain_nca_rollout(params, x, key, steps, fire, alive_threshold=0.1, checkpoint=False):
    """Growing NCA written out in plain JAX: channels-last `x [B, H, W, C]`, periodic identity + Sobel
    perception, dense -> relu -> dense on every cell, firing mask `fire(key, shape)`, alive masking,
    lax.scan. Differentiated by plain autodiff (`checkpoint`: each step rematerialised in the backward)."""
    w1, b1, w2, b2 = params
    h, w = x.shape[1:3]

    def shifted(p, i, j):
        return p[:, i:i + h, j:j + w, :]

    def perceive(x):
        p = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="wrap")
        gx = sum(float(SOBEL_X[i, j]) * shifted(p, i, j) for i in range(3) for j in range(3) if SOBEL_X[i, j])
        gy = sum(float(SOBEL_Y[i, j]) * shifted(p, i, j) for i in range(3) for j in range(3) if SOBEL_Y[i, j])
        return jnp.concatenate([x, gx, gy], axis=-1)

    def alive(x):
        p = jnp.pad(x[..., 3:4], ((0, 0), (1, 1), (1, 1), (0, 0)), mode="wrap")
        m = jax.lax.reduce_window(p, -jnp.inf, jax.lax.max, (1, 3, 3, 1), (1, 1, 1, 1), "VALID")
        return m > alive_threshold

    def step(x, k):
        f = perceive(x).reshape(-1, w1.shape[0])
        d = (jax.nn.relu(f @ w1 + b1) @ w2 + b2).reshape(x.shape)
        y = x + fire(k, x.shape) * d
        return y * (alive(x) & alive(y)).astype(x.dtype), None

    step = jax.checkpoint(step) if checkpoint else step
    return jax.lax.scan(step, x, jax.random.split(key, steps))[0]


def nca_setup(channels, hidden):
    "A dpattern NCA with a non-zero last layer (so the rollout does something) and its plain weights."
    from dpattern.nca.model import NCA
    key = jax.random.key(0)
    m = NCA(channels, hidden=hidden, fire_rate=0.5, alive_threshold=0.1, key=key)
    m = eqx.tree_at(lambda m: m.update.w2, m, 0.02 * jax.random.normal(jax.random.key(1), m.update.w2.shape))
    u = m.update
    return m, (u.w1, u.b1, u.w2, u.b2)


def nca_state(batch, channels, size):
    "A random start, every cell alive (alpha in [0.2, 1))."
    x = jax.random.uniform(jax.random.key(2), (batch, channels, size, size))
    return x.at[:, 3].set(0.2 + 0.8 * x[:, 3])


def train_step(loss_fn, opt):
    "A jitted training step on trainable leaves `p`: value_and_grad of `loss_fn(p, key)`, then `opt`."
    @jax.jit
    def step(p, opt_state, key):
        loss, g = jax.value_and_grad(loss_fn)(p, key)
        updates, opt_state = opt.update(g, opt_state, p)
        return optax.apply_updates(p, updates), opt_state, loss
    return step


def cax_nca(params, channels, fire_rate, alive_threshold):
    "The same Growing NCA built from CAX's public modules (ConvPerceive + NCAUpdate), our weights copied in."
    from cax.core import ComplexSystem
    from cax.core.perceive import ConvPerceive
    from cax.core.update import NCAUpdate
    from flax import nnx

    class GrowingNCA(ComplexSystem):
        def __init__(self, rngs):
            self.perceive = ConvPerceive(channels, 3 * channels, kernel_size=(3, 3),
                                         feature_group_count=channels, rngs=rngs)
            self.update = NCAUpdate(channels, 3 * channels, (params[0].shape[1],), cell_dropout_rate=1 - fire_rate,
                                    alive_threshold=alive_threshold, zeros_init=True, rngs=rngs)

        def _step(self, state, input=None, *, sow=False):
            return self.update(state, self.perceive(state), input)

    ca = GrowingNCA(nnx.Rngs(0))
    ident = np.zeros((3, 3), np.float32)
    ident[1, 1] = 1
    k = np.stack([ident, SOBEL_X, SOBEL_Y], -1)                       # [3, 3, 3]: one group = one channel
    ca.perceive.conv.kernel.value = jnp.asarray(np.tile(k, (1, 1, channels))[:, :, None, :])
    # our feature order is kernel-major ([x, gx, gy] per kernel); CAX's is channel-major: permute W1's rows
    w1, b1, w2, b2 = params
    order = np.arange(3 * channels).reshape(3, channels).T.reshape(-1)
    layers = ca.update.layers
    layers[0].kernel.value = w1[order][None, None]
    layers[0].bias.value = b1
    layers[1].kernel.value = w2[None, None]
    layers[1].bias.value = b2
    return ca


def bench_nca(cfg, rows):
    batch, channels, size, hidden, steps, rep = cfg["nca"]
    m, params = nca_setup(channels, hidden)
    x = nca_state(batch, channels, size)
    x_last = jnp.moveaxis(x, 1, -1)
    target = jax.random.uniform(jax.random.key(3), (batch, 4, size, size))
    t_last = jnp.moveaxis(target, 1, -1)
    shape = f"{channels} ch, {size}², batch {batch}, {hidden} hidden, {steps} steps"
    opt = optax.adam(2e-3)

    # --- dpattern: the public model, rollout and a loss as the NCA tasks use them (default fast gradient)
    trainable, static = m.partition()
    roll = eqx.filter_jit(lambda m, x, k: m.rollout(x, steps, k)[0])
    dp_roll = median_time(lambda: roll(m, x, jax.random.key(4)), rep)

    def dp_loss(p, key):
        y, _ = eqx.combine(p, static).rollout(x, steps, key)
        return jnp.mean((y[:, :4] - target) ** 2)
    dp_step = train_step(dp_loss, opt)
    dp_state = [trainable, opt.init(trainable)]
    dp_train = median_time(lambda: dp_step(*dp_state, jax.random.key(5)), rep)

    # --- plain JAX; first a check that it computes what dpattern does, given dpattern's firing masks
    same = jax.jit(lambda p, x, k: plain_nca_rollout(p, x, k, steps, m.fire_mask))
    err = float(jnp.max(jnp.abs(jnp.moveaxis(same(params, x_last, jax.random.key(4)), -1, 1)
                                - roll(m, x, jax.random.key(4)))))
    assert err < 1e-3, f"dpattern and plain-JAX NCA rollouts differ by {err}"
    fire = bernoulli_fire(0.5)
    pj_rollout = jax.jit(lambda p, x, k: plain_nca_rollout(p, x, k, steps, fire))
    pj_roll = median_time(lambda: pj_rollout(params, x_last, jax.random.key(4)), rep)

    def pj_loss(p, key):
        y = plain_nca_rollout(p, x_last, key, steps, fire)
        return jnp.mean((y[..., :4] - t_last) ** 2)
    pj_step = train_step(pj_loss, opt)
    pj_state = [params, opt.init(params)]
    pj_train = median_time(lambda: pj_step(*pj_state, jax.random.key(5)), rep)

    rows.append(row(f"NCA rollout ({shape})", dp_roll, "plain-jax", pj_roll))
    rows.append(row(f"NCA training step ({shape}, Adam)", dp_train, "plain-jax", pj_train))

    # --- CAX
    try:
        from flax import nnx
        ca = cax_nca(params, channels, 0.5, 0.1)
    except ImportError as e:
        note(f"CAX rows skipped: {e} (pip install -e .[bench])")
    else:
        cx_roll = median_time(lambda: ca(x_last, num_steps=steps), rep)
        only_update = nnx.All(nnx.Param, nnx.PathContains("update"))   # the perception stays fixed
        nnx_opt = nnx.Optimizer(ca, opt, wrt=only_update)

        @nnx.jit
        def cx_step(ca, nnx_opt):
            def loss(ca):
                y = ca(x_last, num_steps=steps)
                return jnp.mean((y[..., :4] - t_last) ** 2)
            value, g = nnx.value_and_grad(loss, argnums=nnx.DiffState(0, only_update))(ca)
            nnx_opt.update(ca, g)
            return value
        cx_train = median_time(lambda: cx_step(ca, nnx_opt), rep)
        rows.append(row(f"NCA rollout ({shape})", dp_roll, "cax", cx_roll))
        rows.append(row(f"NCA training step ({shape}, Adam)", dp_train, "cax", cx_train))

    rows.append(row("NCA training step / rollout (dpattern)", dp_train, "rollout", dp_roll))
    rows.append(row("NCA training step / rollout (plain JAX)", pj_train, "rollout", pj_roll))

    # --- the FLOP floor: the multiply-adds the rollout cannot avoid, at this CPU's matmul rate
    n = cfg["matmul"]
    a = jax.random.normal(jax.random.key(6), (n, n))
    mm = jax.jit(lambda a: a @ a)
    rate = 2 * n ** 3 / median_time(lambda: mm(a), max(rep, 5))
    feats = 3 * channels
    stencil = 2 * 6 * 2 * channels        # two Sobel stencils, 6 non-zero taps each, multiply + add
    network = 2 * (feats * hidden + hidden * channels)
    every, firing = network + stencil, 0.5 * network + stencil
    cells = batch * size * size * steps
    note(f"matmul {n}x{n}: {rate / 1e9:.1f} GFLOP/s; FLOPs per cell-step: {every} (network on every cell), "
         f"{firing:.0f} (network on the firing half only, as dpattern runs it)")
    rows.append(row("NCA rollout vs FLOP floor (network on firing cells)", dp_roll, "flop-floor",
                    cells * firing / rate))
    rows.append(row("NCA rollout vs FLOP floor (network on every cell)", dp_roll, "flop-floor",
                    cells * every / rate))


# ============================================================================================ Gray–Scott
def plain_gray_scott(params, u, dt, n, scan=False):
    """Gray–Scott written out in plain JAX: periodic 9-point Laplacian (dpattern's stencil, dx = 1),
    `n` explicit Euler steps of size `dt` (fori_loop, or lax.scan when it will be differentiated)."""
    D_a, D_b, feed, kill = params

    def lap(v):
        r = lambda dy, dx: jnp.roll(v, (dy, dx), axis=(-2, -1))
        edges = r(1, 0) + r(-1, 0) + r(0, 1) + r(0, -1)
        corners = r(1, 1) + r(1, -1) + r(-1, 1) + r(-1, -1)
        return 0.5 * edges + 0.25 * corners - 3.0 * v

    def step(u):
        a, b = u[0], u[1]
        la, lb = lap(u[0]), lap(u[1])
        r = a * b * b
        return u + dt * jnp.stack([D_a * la - r + feed * (1 - a), D_b * lb + r - (feed + kill) * b])

    if scan:
        return jax.lax.scan(lambda u, _: (step(u), None), u, None, length=n)[0]
    return jax.lax.fori_loop(0, n, lambda i, u: step(u), u)


def rel_error(u, ref):
    return float(jnp.linalg.norm(u - ref) / jnp.linalg.norm(ref))


def bench_gray_scott(cfg, rows):
    from dpattern.pde.classic import GrayScott
    from dpattern.pde.solver import Solver
    size, t_end, rep = cfg["gs"]
    dt = 1.0
    model = GrayScott()
    u0 = model.initial_condition(jax.random.key(7), (size, size))
    ts = np.array([0.0, t_end])
    n = int(round(t_end / dt))
    label = f"{size}², t = {t_end:g}, Euler dt = {dt:g}"

    solve = eqx.filter_jit(lambda model, u0: Solver(diffrax.Euler(), dt=dt)(model, u0, ts)[-1])
    dp_s = median_time(lambda: solve(model, u0), rep)
    params = (model.D_a, model.D_b, model.feed, model.kill)
    plain = jax.jit(lambda p, u: plain_gray_scott(p, u, dt, n))
    err = rel_error(solve(model, u0), plain(params, u0))
    assert err < 1e-4, f"dpattern and plain-JAX Gray–Scott differ by {err}"
    pj_s = median_time(lambda: plain(params, u0), rep)
    rows.append(row(f"Gray–Scott solve ({label})", dp_s, "plain-jax", pj_s))

    # the gradient of a loss on the final state with respect to the four parameters
    target = 0.5 * u0

    def dp_loss(model):
        return jnp.mean((Solver(diffrax.Euler(), dt=dt)(model, u0, ts)[-1] - target) ** 2)
    dp_grad = eqx.filter_jit(eqx.filter_grad(dp_loss))
    pj_grad = jax.jit(jax.grad(lambda p: jnp.mean((plain_gray_scott(p, u0, dt, n, scan=True) - target) ** 2)))
    g_dp, g_pj = dp_grad(model), pj_grad(params)
    gerr = max(abs(float(a - b)) / (abs(float(b)) + 1e-12) for a, b in
               zip((g_dp.D_a, g_dp.D_b, g_dp.feed, g_dp.kill), g_pj))
    assert gerr < 1e-2, f"dpattern and plain-JAX Gray–Scott gradients differ by {gerr:.2e} (relative)"
    dpg = median_time(lambda: dp_grad(model), rep)
    pjg = median_time(lambda: pj_grad(params), rep)
    rows.append(row(f"Gray–Scott gradient through the solve ({label})", dpg, "plain-jax", pjg))

    # exponax (ETDRK2, pseudo-spectral) at matched accuracy: each solver's time-stepping error is measured
    # against its own converged solution (a much finer step); exponax gets the largest step whose error
    # is no worse than dpattern's Euler at dt = 1
    try:
        import exponax
    except ImportError as e:
        note(f"exponax row skipped: {e} (pip install -e .[bench])")
        return
    fine = eqx.filter_jit(lambda model, u0: Solver(dt=dt / 8)(model, u0, ts)[-1])
    dp_err = rel_error(solve(model, u0), fine(model, u0))

    def ex_solver(step):
        stepper = exponax.stepper.reaction.GrayScott(
            2, float(size), size, step, diffusivity_1=float(model.D_a), diffusivity_2=float(model.D_b),
            feed_rate=float(model.feed), kill_rate=float(model.kill))
        m = int(round(t_end / step))
        return jax.jit(lambda u: jax.lax.fori_loop(0, m, lambda i, u: stepper(u), u))

    ex_ref = ex_solver(dt / 8)(u0)
    chosen = None
    for step in cfg["gs_exponax_dt"]:
        f = ex_solver(step)
        e = rel_error(f(u0), ex_ref)
        if np.isfinite(e) and e <= dp_err:
            chosen, ex_err, ex_f = step, e, f
    if chosen is None:
        note(f"exponax row skipped: no step in {cfg['gs_exponax_dt']} reaches dpattern's error {dp_err:.2e}")
        return
    ex_s = median_time(lambda: ex_f(u0), rep)
    note(f"Gray–Scott time-stepping error at t = {t_end:g} (each against its own dt/8 solution): dpattern "
         f"Euler dt = {dt:g}: {dp_err:.2e}; exponax ETDRK2 dt = {chosen:g}: {ex_err:.2e}")
    rows.append(row(f"Gray–Scott solve ({size}², t = {t_end:g}, matched accuracy: exponax dt = {chosen:g})",
                    dp_s, "exponax", ex_s))


# =================================================================================================== ABM
def plain_physarum_step(field, pos, head, key, size, angle=math.pi / 4, distance=9.0, rotation=math.pi / 8,
                        speed=1.0, deposit=5.0, diffusion=0.25, decay=0.1):
    "One Physarum step in plain JAX on a periodic `field [G, G]`: sense, turn, move, splat, diffuse, decay."
    def corners(p):
        u = p - 0.5
        lo = jnp.floor(u)
        f = u - lo
        x0, y0 = lo[..., 0].astype(jnp.int32) % size, lo[..., 1].astype(jnp.int32) % size
        x1, y1 = (x0 + 1) % size, (y0 + 1) % size
        fx, fy = f[..., 0], f[..., 1]
        return ((y0, x0, (1 - fx) * (1 - fy)), (y0, x1, fx * (1 - fy)), (y1, x0, (1 - fx) * fy), (y1, x1, fx * fy))

    th = head[:, None] + jnp.array([-angle, 0.0, angle])
    sensors = pos[:, None, :] + distance * jnp.stack([jnp.cos(th), jnp.sin(th)], -1)
    sensed = sum(w * field[y, x] for y, x, w in corners(sensors))
    left, front, right = sensed[:, 0], sensed[:, 1], sensed[:, 2]
    coin = jnp.where(jax.random.bernoulli(key, 0.5, front.shape), rotation, -rotation)
    turn = jnp.where((front > left) & (front > right), 0.0,
                     jnp.where((front < left) & (front < right), coin,
                               jnp.where(left > right, -rotation, jnp.where(right > left, rotation, 0.0))))
    head = head + turn
    pos = jnp.mod(pos + speed * jnp.stack([jnp.cos(head), jnp.sin(head)], -1), size)
    for y, x, w in corners(pos):
        field = field.at[y, x].add(deposit * w)
    r = lambda dy, dx: jnp.roll(field, (dy, dx), axis=(0, 1))
    lap = 0.5 * (r(1, 0) + r(-1, 0) + r(0, 1) + r(0, -1)) + 0.25 * (r(1, 1) + r(1, -1) + r(-1, 1) + r(-1, -1)) \
        - 3.0 * field
    return (1 - decay) * (field + diffusion * lap), pos, head


def bench_abm(cfg, rows):
    from dpattern.abm.agents import random_agents
    from dpattern.abm.physarum import Physarum
    n_agents, size, rep = cfg["abm"]
    model = Physarum()
    state = random_agents(jax.random.key(8), n_agents, size)
    field0 = jax.random.uniform(jax.random.key(9), (1, size, size))    # a non-trivial trail to sense
    state = eqx.tree_at(lambda s: s.field, state, field0)
    key = jax.random.key(10)
    dp_step = eqx.filter_jit(lambda model, s, k: model.step(s, k))
    dp_s = median_time(lambda: dp_step(model, state, key), rep)
    pj_step = jax.jit(lambda f, p, h, k: plain_physarum_step(f, p, h, k, size))
    pj_s = median_time(lambda: pj_step(state.field[0], state.positions, state.headings, key), rep)
    f_pj, p_pj, _ = pj_step(state.field[0], state.positions, state.headings, key)
    out = dp_step(model, state, key)
    # the same step: dpattern rotates each heading's (cos, sin) to its side sensors where plain JAX evaluates
    # six sines and cosines, so a sensed value can differ in its last bits and flip a near-tie turn of a rare
    # agent (and the trail it leaves); every other agent and cell must agree
    moved = float(jnp.mean(jnp.max(jnp.abs(out.positions - p_pj), -1) > 1e-3))
    cells = float(jnp.mean(jnp.abs(out.field[0] - f_pj) > 1e-3))
    mass = float(jnp.abs(out.field.sum() - f_pj.sum()) / f_pj.sum())
    assert moved <= 1e-4 and cells <= 1e-3 and mass < 1e-5, \
        f"dpattern and plain-JAX Physarum steps differ: {moved:.1e} of agents, {cells:.1e} of cells, mass {mass:.1e}"
    rows.append(row(f"ABM Physarum step ({n_agents // 1000}k agents, {size}² field)", dp_s, "plain-jax", pj_s))


# ================================================================================================ memory
MEMORY_SCRIPT = r"""
import json, resource, sys
sys.path.insert(0, {root!r})
sys.path.insert(0, {here!r})
import equinox as eqx, jax, jax.numpy as jnp, optax
import run as bench
batch, channels, size, hidden, steps = {args!r}
which = {which!r}
m, params = bench.nca_setup(channels, hidden)
x = bench.nca_state(batch, channels, size)
target = jax.random.uniform(jax.random.key(3), (batch, 4, size, size))
opt = optax.adam(2e-3)
if which == "dpattern":
    p, static = m.partition()
    loss = lambda p, k: jnp.mean((eqx.combine(p, static).rollout(x, steps, k)[0][:, :4] - target) ** 2)
else:
    p, xl, tl = params, jnp.moveaxis(x, 1, -1), jnp.moveaxis(target, 1, -1)
    fire = bench.bernoulli_fire(0.5)
    loss = lambda p, k: jnp.mean((bench.plain_nca_rollout(p, xl, k, steps, fire, checkpoint=True)[..., :4] - tl) ** 2)
step = bench.train_step(loss, opt)
out = step(p, opt.init(p), jax.random.key(5))
jax.block_until_ready(out)
assert bool(jnp.isfinite(out[2]))
print(json.dumps({{"peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9}}))
"""


def peak_rss(which, args):
    "Peak resident memory (GB) of a fresh process that takes one training step through the rollout."
    here = os.path.dirname(os.path.abspath(__file__))
    code = MEMORY_SCRIPT.format(root=os.path.dirname(here), here=here, args=tuple(args), which=which)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"the {which} memory run failed:\n{r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])["peak_gb"]


def bench_memory(cfg, rows):
    args = cfg["memory"]
    batch, channels, size, hidden, steps = args
    dp, pj = peak_rss("dpattern", args), peak_rss("plain-jax", args)
    note("memory rows are peak resident memory in GB (whole process), not seconds; plain JAX "
         "rematerialises each step (jax.checkpoint in lax.scan)")
    rows.append(row(f"NCA training peak RSS, GB ({steps} steps, {size}², batch {batch}, {channels} ch)",
                    dp, "plain-jax", pj))


# =================================================================================================== main
WORKLOADS = {"nca": bench_nca, "gray-scott": bench_gray_scott, "abm": bench_abm, "memory": bench_memory}

FULL = dict(nca=(8, 16, 64, 128, 64, 5), matmul=2048, gs=(128, 1000.0, 5), gs_exponax_dt=(1.0, 2.0, 4.0, 5.0, 10.0),
            abm=(100_000, 256, 60), memory=(8, 16, 64, 128, 1024))
QUICK = dict(nca=(2, 16, 16, 32, 8, 1), matmul=256, gs=(32, 20.0, 1), gs_exponax_dt=(1.0,),
             abm=(2_000, 32, 1), memory=(1, 16, 16, 32, 16))


def machine() -> str:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{cpu}, {os.cpu_count()} cores, load {load:.2f}; Python {platform.python_version()}, "
            f"jax {jax.__version__}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test, not a measurement")
    p.add_argument("--json", help="also write the rows to this file")
    p.add_argument("--only", nargs="+", choices=list(WORKLOADS), help="run only these workloads")
    a = p.parse_args(argv)
    if a.json and not os.path.isdir(os.path.dirname(os.path.abspath(a.json))):
        p.error(f"--json {a.json}: its folder does not exist")
    cfg = QUICK if a.quick else FULL
    print(machine(), flush=True)
    rows = []
    for name in a.only or WORKLOADS:
        t = time.perf_counter()
        WORKLOADS[name](cfg, rows)
        note(f"{name}: {time.perf_counter() - t:.0f} s in all (compiling included)")
    w = max(len(r["workload"]) for r in rows)
    print(f"\n{'workload':<{w}}  {'dpattern s':>10}  {'baseline':<12}  {'baseline s':>10}  {'ratio':>6}")
    for r in rows:
        print(f"{r['workload']:<{w}}  {r['dpattern_s']:10.4f}  {r['baseline']:<12}  {r['baseline_s']:10.4f}  "
              f"{r['ratio']:6.2f}")
    if a.json:
        tmp = f"{a.json}.tmp{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump(rows, f, indent=1)
        os.replace(tmp, a.json)        # never a half-written file


if __name__ == "__main__":
    main()
