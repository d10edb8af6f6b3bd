"""Steps per second of the live widgets (dpattern.inspect.live) in headless Chromium, with the renderer used.

Workloads: the 64x64, 16-channel NCA (hidden 128, MLP, fire rate 0.5) with every cell alive (the worst
case: every firing cell runs the network), the trained logo NCA of the docs (12 channels, hidden 64, 40x40,
grown: cells outside the pattern are skipped) and 256x256 Gray–Scott (explicit Euler); both NCAs also with the WebGL2 shaders forced (`renderer='webgl'`:
on a machine without a GPU, Chromium's software WebGL, which `renderer='auto'` avoids). The page's own stepping loop (`bench(n)` of the widget's hook)
runs without drawing; medians of repeats after a warm-up. Chromium runs with --disable-gpu, as in the tests.

    python benchmarks/live_browser.py [--quick] [--json FILE]
"""
import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import equinox as eqx
import jax
import numpy as np

from dpattern.inspect.live import html_page, live, live_pde
from dpattern.core.model import load_model
from dpattern.nca.model import NCA, seed_state
from dpattern.pde.classic import GrayScott

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer steps and repeats")
    ap.add_argument("--json", type=Path, help="also write the rows to this file")
    a = ap.parse_args(argv)
    if not Path(CHROMIUM).exists():
        sys.exit(f"error: Chromium not found at {CHROMIUM} (Debian: apt-get install -y chromium; or set CHROMIUM)")
    from playwright.sync_api import sync_playwright
    nca = NCA(16, hidden=128, key=jax.random.key(0))
    # a random output layer, and alpha drifting up, so that the cells stay alive (and busy) throughout
    w2 = 0.001 * jax.random.normal(jax.random.key(1), nca.update.w2.shape)
    nca = eqx.tree_at(lambda m: (m.update.w2, m.update.b2), nca, (w2, nca.update.b2.at[3].set(0.01)))
    full = np.asarray(jax.random.uniform(jax.random.key(2), (16, 64, 64)), np.float32) * 0.5 + 0.2
    logo = load_model(Path(__file__).resolve().parent.parent / "nbs" / "inspect" / "nca_logo.dpt")
    grown, _ = logo.rollout(seed_state(12, 40), 64, jax.random.key(0))
    widgets = [("NCA 64x64x16, hidden 128, all cells alive", live(nca, full, playing=False), 20),
               ("logo NCA 40x40x12, hidden 64, grown (nca_logo.dpt)", live(logo, grown, playing=False), 100),
               ("NCA 64x64x16, hidden 128, all alive, WebGL2 forced", live(nca, full, playing=False, renderer="webgl"), 4),
               ("logo NCA 40x40x12, WebGL2 forced", live(logo, grown, playing=False, renderer="webgl"), 8),
               ("Gray–Scott 256x256, explicit Euler", live_pde(GrayScott(), size=256, playing=False), 50)]
    n_rep = 3 if a.quick else 7
    rows = []
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = b.new_page()
        d = Path(tempfile.mkdtemp(prefix="dpattern-live-bench-"))
        (d / "page.html").write_text(html_page(*[w for _, w, _ in widgets]), encoding="utf-8")
        page.goto((d / "page.html").as_uri())
        page.wait_for_function("window.dpatternLiveReady === true", timeout=60000)
        ua = page.evaluate("navigator.userAgent")
        for i, (name, _, steps) in enumerate(widgets):
            steps = max(2, steps // 4) if a.quick else steps
            page.evaluate(f"window.dpatternLive[{i}].bench({max(1, steps // 4)})")          # warm-up (JIT)
            reps = min(n_rep, 2) if "forced" in name else n_rep       # (software WebGL: slow)
            rates = [page.evaluate(f"window.dpatternLive[{i}].bench({steps})") for _ in range(reps)]
            renderer = page.evaluate(f"window.dpatternLive[{i}].renderer")
            alive = page.evaluate(f"(h => h.kind === 'nca' ? (n => h.state().slice(3 * n, 4 * n).filter(v => v > 0.1).length / n)"
                                  f"(h.engine.H * h.engine.W) : null)(window.dpatternLive[{i}])")
            rows.append(dict(workload=name, steps_per_s=float(np.median(rates)), renderer=renderer,
                             steps=steps, repeats=reps, alive_after=alive))
            print(f"{name:<45} {np.median(rates):8.1f} steps/s   renderer: {renderer} "
                  f"(min {min(rates):.1f}, max {max(rates):.1f}; {steps} steps x {reps}"
                  + (f"; alive cells after: {alive:.0%}" if alive is not None else "") + ")", flush=True)
        gl = page.evaluate("""() => { const g = document.createElement('canvas').getContext('webgl2');
            const e = g && g.getExtension('WEBGL_debug_renderer_info');
            return g ? (e ? g.getParameter(e.UNMASKED_RENDERER_WEBGL) : 'WebGL2 (renderer hidden)') : 'no WebGL2'; }""")
        b.close()
    print(f"browser: {ua}\nWebGL: {gl}")
    if a.json:
        a.json.write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
