"""The bias of fitting Gray–Scott with each spatial discretisation, against an independent spectral solver.

    python benchmarks/discretisation.py [--size 64] [--iters 300] [--json FILE] [--quick]

The data: `tests/spectral_reference.py` (NumPy, Fourier pseudo-spectral, integrating-factor RK4 with steps of
0.5 -- no dpattern code) solves Gray–Scott with the default parameters on a periodic `--size`² grid, dx = 1, from
square seeds to t = 2000, 101 frames (spots). Each discretisation then fits all four parameters by `dpattern`'s
`fit` (multiple shooting, window 1, batch 16, Heun at the given dt) from a start 30% off, and the table gives the
relative error of each fitted parameter. Nothing here asserts; `tests/test_pde_discretisation.py` does."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from spectral_reference import gray_scott, seeds  # noqa: E402

from dpattern.core.operators import FivePoint, FourthOrder, NinePoint, Spectral  # noqa: E402
from dpattern.pde import GrayScott, Solver, fit  # noqa: E402

TRUE = dict(D_a=0.1, D_b=0.05, feed=0.0623, kill=0.06268)
START = dict(D_a=0.13, D_b=0.035, feed=0.0623 * 1.3, kill=0.06268 * 0.7)
SETUPS = [("five-point", FivePoint(), 1.0), ("nine-point (default)", NinePoint(), 1.0),
          ("nine-point, diagonal 1/3", NinePoint(diagonal=1 / 3), 1.0), ("fourth-order", FourthOrder(), 1.0),
          ("spectral", Spectral(), 1.0), ("fourth-order", FourthOrder(), 0.5), ("spectral", Spectral(), 0.5)]


def reference(size: int, t_end: float = 2000.0, frames: int = 101, seed: int = 0, h: float = 0.5):
    "Times `[frames]` and the reference trajectory `[frames, 2, size, size]` (float32)."
    t = np.linspace(0.0, t_end, frames)
    return t, gray_scott(seeds(size, seed), t, **TRUE, h=h).astype(np.float32)


def fitted_errors(laplacian, dt: float, t, u, iters: int, batch: int = 16, seed: int = 0) -> dict:
    "Relative error of each parameter after fitting `GrayScott(laplacian=...)` from `START`."
    model = GrayScott(**START, laplacian=laplacian)
    result = fit(model, t, u, steps=iters, key=jax.random.key(seed), solver=Solver(dt=dt), batch_size=batch,
                 progress=False)
    got = result.model.parameters()
    return {k: got[k] / v - 1 for k, v in TRUE.items()}


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--iters", type=int, default=300)
    p.add_argument("--json", help="write the rows to this file")
    p.add_argument("--quick", action="store_true", help="a smoke test: 16², 5 iterations (figures mean nothing)")
    p.add_argument("--only", type=int, nargs="+", help="run only these rows of SETUPS (0-based)")
    args = p.parse_args(argv)
    size, iters = (16, 5) if args.quick else (args.size, args.iters)
    t0 = time.time()
    t, u = reference(size)
    h_err = np.abs(reference(size, h=0.25)[1] - u).max() if not args.only else float("nan")
    print(f"reference: {size}², {len(t)} frames to t = {t[-1]:g} in {time.time() - t0:.1f} s; "
          f"max change when its step is halved: {h_err:.1e}; b in [{u[:, 1].min():.3f}, {u[:, 1].max():.3f}]")
    rows = []
    print(f"{'discretisation':26s} {'dt':>4s} " + " ".join(f"{k:>8s}" for k in TRUE) + "   seconds")
    for name, lap, dt in [s for i, s in enumerate(SETUPS) if args.only is None or i in args.only]:
        t1 = time.time()
        err = fitted_errors(lap, dt, t, u, iters)
        rows.append(dict(discretisation=name, dt=dt, size=size, iters=iters, seconds=round(time.time() - t1, 1),
                         relative_error=err))
        print(f"{name:26s} {dt:4g} " + " ".join(f"{100 * e:+7.2f}%" for e in err.values())
              + f"   {time.time() - t1:5.0f}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
