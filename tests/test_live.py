"""Live widgets (dpattern.inspect.live) in headless Chromium, offline: the page's step equals the library's."""
import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import ROOT, require_browser
from dpattern.core.data import load_image
from dpattern.core.model import load_model
from dpattern.inspect.live import html_page, live, live_pde
from dpattern.nca.model import NCA, seed_state
from dpattern.nca.visualise import erase_disc
from dpattern.pde.classic import MODELS, GrayScott
from dpattern.pde.solver import solve


@pytest.fixture(scope="module")
def chromium():
    import live_page
    live_page.CHROMIUM = require_browser()
    with live_page.browser() as b:
        yield b


def _page(chromium, *widgets):
    import live_page
    return live_page.open_page(chromium, html_page(*widgets))


def _state(page, shape, i=0):
    import live_page
    live_page.check(page)
    return live_page.state(page, shape, i)


def _nca(update, boundary, fire_rate):
    "A random NCA whose output layer is random too (small, so that 50 steps stay bounded)."
    m = NCA(12, hidden=32, update=update, fire_rate=fire_rate, boundary=boundary, key=jax.random.key(0))
    w2 = (0.001 if update == "kan" else 0.01) * jax.random.normal(jax.random.key(1), m.update.w2.shape)
    b2 = m.update.b2.at[3].set(0.01)         # alpha drifts up a little: the cells stay alive
    return eqx.tree_at(lambda t: (t.update.w2, t.update.b2), m, (w2, b2))


def _start(h=20, w=24):
    "Random cells over the whole grid (so the boundary matters), alpha around the alive threshold."
    return jax.random.uniform(jax.random.key(2), (12, h, w)) * 0.3


@pytest.mark.parametrize("update,boundary,renderer", [
    ("mlp", "periodic", "cpu"), ("mlp", "zero", "cpu"), ("gated", "periodic", "cpu"), ("gated", "zero", "cpu"),
    ("kan", "periodic", "cpu"), ("mlp", "reflect", "cpu"),
    # the WebGL2 shaders (here on Chromium's software WebGL; 'auto' picks them only on a hardware GPU)
    ("mlp", "periodic", "webgl"), ("mlp", "zero", "webgl"), ("gated", "periodic", "webgl"), ("gated", "zero", "webgl"),
    ("mlp", "replicate", "webgl")])
def test_page_step_equals_rollout(chromium, update, boundary, renderer):
    x0 = _start()
    # fire rate 1: no masks
    m1 = _nca(update, boundary, 1.0)
    ref1 = np.asarray(m1.rollout(x0, 50, jax.random.key(3))[0])
    page = _page(chromium, live(m1, x0, playing=False, renderer=renderer))
    assert page.evaluate("window.dpatternLive[0].renderer") == renderer
    page.evaluate("window.dpatternLive[0].step(50)")
    got1 = _state(page, x0.shape)
    np.testing.assert_allclose(got1, ref1, atol=1e-4, rtol=0)
    # fire rate 0.5: the library's firing masks handed to the page (as rollout draws them)
    m = _nca(update, boundary, 0.5)
    key = jax.random.key(4)
    masks = np.stack([np.asarray(m.fire_mask(k, (*x0.shape[1:], 12)))[..., 0] for k in jax.random.split(key, 50)])
    assert 0.4 < masks.mean() < 0.6
    ref = np.asarray(m.rollout(x0, 50, key)[0])
    page = _page(chromium, live(m, x0, playing=False, renderer=renderer))
    page.evaluate("m => window.dpatternLive[0].step(50, m)", masks.ravel().tolist())
    got = _state(page, x0.shape)
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=0)
    assert np.abs(ref - np.asarray(x0)).max() > 0.05 and (ref[3] > 0.1).mean() > 0.05    # it did something
    page.context.close()


def test_boundaries_differ():
    "The comparison above can tell the boundaries apart: the same start differs by the boundary."
    x0 = _start()
    a, _ = _nca("mlp", "periodic", 1.0).rollout(x0, 50, jax.random.key(3))
    b, _ = _nca("mlp", "zero", 1.0).rollout(x0, 50, jax.random.key(3))
    assert float(jnp.abs(a - b).max()) > 1e-2


@pytest.fixture(scope="module")
def logo():
    "The saved logo NCA (12 channels, grown to scikit-image's logo at 32 px, padded to 40), its target, a grown state."
    m = load_model(ROOT / "nbs/inspect/nca_logo.dpt")
    target = np.asarray(load_image("logo", size=32, pad=4))
    grown, _ = m.rollout(seed_state(12, 40), 64, jax.random.key(0))   # its training rollouts were 40-64 steps
    return m, target, grown


def _distance(x, target):
    return float(np.sqrt(((np.asarray(x)[:4] - target) ** 2).sum()))


def test_click_erases(chromium, logo):
    m, target, grown = logo
    w = live(m, grown, zoom=8, brush=0.2)
    page = _page(chromium, w)
    page.get_by_role("button", name="pause").click()
    canvas = page.locator(".dpattern-live canvas")
    box = canvas.bounding_box()
    fy, fx = 0.4, 0.6
    page.mouse.click(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
    got = _state(page, grown.shape)
    yy, xx = np.mgrid[0:40, 0:40]
    inside = ((yy + 0.5) / 40 - fy) ** 2 + ((xx + 0.5) / 40 - fx) ** 2 < 0.19 ** 2
    assert inside.sum() > 50
    assert np.all(got[3][inside] == 0), got[3][inside].max()
    assert (got[3][~inside] > 0.1).sum() > 200               # the rest is still there
    page.context.close()


def test_logo_regrows_in_the_page(chromium, logo):
    m, target, grown = logo
    hurt = erase_disc(grown, centre=(0.4, 0.6), radius=0.2)
    steps = 32                  # (trained without damage: it regrows most of the disc, then drifts slowly)
    d_jax = _distance(m.rollout(hurt, steps, jax.random.key(5))[0], target)
    d_hurt = _distance(hurt, target)
    page = _page(chromium, live(m, hurt, playing=False))
    page.evaluate(f"window.dpatternLive[0].step({steps})")      # the page's own firing masks
    d_page = _distance(_state(page, hurt.shape), target)
    assert d_jax < 0.7 * d_hurt, (d_jax, d_hurt)                  # the model does regrow
    assert d_page <= 1.5 * d_jax, (d_page, d_jax, d_hurt)
    page.context.close()


def _euler(model, u0, steps, dt):
    return np.asarray(solve(model, jnp.asarray(u0), jnp.array([0.0, steps * dt]), solver=diffrax.Euler(), dt=dt)[-1])


def test_gray_scott_matches_euler(chromium):
    gs = GrayScott()
    w = live_pde(gs, size=64, playing=False)
    u0 = gs.initial_condition(jax.random.key(0), (64, 64))
    page = _page(chromium, w)
    page.evaluate("window.dpatternLive[0].step(200)")
    got = _state(page, u0.shape)
    ref = _euler(gs, u0, 200, 1.0)
    assert np.abs(ref - np.asarray(u0)).max() > 0.05
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=0)
    page.context.close()


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_classic_model_matches_euler(chromium, name):
    model = MODELS[name]()
    if name == "gray-scott":
        model = MODELS[name](boundary="zero")
    u0 = model.initial_condition(jax.random.key(1), (24, 24))
    dt = model.simulation["dt"]
    page = _page(chromium, live_pde(model, u0, playing=False))
    page.evaluate("window.dpatternLive[0].step(40)")
    got = _state(page, u0.shape)
    ref = _euler(model, u0, 40, dt)
    scale = max(1.0, float(np.abs(ref).max()))
    np.testing.assert_allclose(got, ref, atol=1e-4 * scale, rtol=0)
    page.context.close()


def test_feed_slider_changes_the_feed_the_page_uses(chromium):
    gs = GrayScott()
    u0 = gs.initial_condition(jax.random.key(0), (32, 32))
    page = _page(chromium, live_pde(gs, u0, playing=False))
    before = page.evaluate("window.dpatternLive[0].params()")["feed"]
    assert before == pytest.approx(float(gs.feed))
    page.locator('input[data-param="feed"]').fill("0.03")
    feed = page.evaluate("window.dpatternLive[0].params()")["feed"]
    assert feed != before and abs(feed - 0.03) < 2 * float(gs.feed) / 500     # snapped to the slider's step
    page.evaluate("window.dpatternLive[0].step(100)")
    got = _state(page, u0.shape)
    ref = _euler(GrayScott(feed=feed), u0, 100, 1.0)
    old = _euler(gs, u0, 100, 1.0)
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=0)
    assert np.abs(got - old).max() > 1e-3
    page.context.close()


def test_brush_seeds_the_second_species(chromium):
    gs = GrayScott()
    u0 = np.stack([np.ones((32, 32)), np.zeros((32, 32))]).astype(np.float32)
    page = _page(chromium, live_pde(gs, u0, playing=False, brush=0.2, zoom=4))
    box = page.locator(".dpattern-live canvas").bounding_box()
    page.mouse.click(box["x"] + 0.5 * box["width"], box["y"] + 0.5 * box["height"])
    got = _state(page, u0.shape)
    yy, xx = np.mgrid[0:32, 0:32]
    inside = ((yy + 0.5) / 32 - 0.5) ** 2 + ((xx + 0.5) / 32 - 0.5) ** 2 < 0.19 ** 2
    assert np.all(got[1][inside] == 0.25) and np.all(got[0][inside] == 0.5)
    assert np.all(got[1][~inside & (np.abs(yy - 16) > 8)] == 0)
    page.context.close()


def test_auto_renderer_avoids_software_webgl(chromium):
    "Chromium here has only a software WebGL (SwiftShader), far slower than the JavaScript step: 'auto' is the CPU."
    page = _page(chromium, live(_nca("mlp", "periodic", 1.0), _start(), playing=False))
    gl = page.evaluate("""() => { const g = document.createElement('canvas').getContext('webgl2');
        const e = g && g.getExtension('WEBGL_debug_renderer_info');
        return e ? g.getParameter(e.UNMASKED_RENDERER_WEBGL) : ''; }""")
    expected = "cpu" if any(s in gl.lower() for s in ("swiftshader", "llvmpipe", "software")) else "webgl"
    assert page.evaluate("window.dpatternLive[0].renderer") == expected, gl
    assert ("WebGL2" if expected == "webgl" else "CPU") in page.locator(".dpl-info").text_content()


def test_bad_input():
    with pytest.raises(ValueError, match="NCA"):
        live(GrayScott())
    with pytest.raises(ValueError, match="classic models"):
        live_pde(_nca("mlp", "periodic", 1.0))
    with pytest.raises(ValueError, match="channels"):
        live(_nca("mlp", "periodic", 1.0), np.zeros((5, 20, 20)))
    with pytest.raises(ValueError, match="renderer"):
        live(_nca("mlp", "periodic", 1.0), renderer="gpu")
    with pytest.raises(ValueError, match="unknown parameters"):
        live_pde(GrayScott(), size=16, ranges={"food": (0, 1)})
