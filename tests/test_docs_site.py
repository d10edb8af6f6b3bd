"""The documentation website in a real browser: headless Chromium (Debian's `chromium`) via Playwright.

Builds `_docs/` with tools/build_site.py unless it is fresh (built from exactly the current sources),
serves it on 127.0.0.1, opens every page and fails on console errors, page errors, failed requests,
requests that leave 127.0.0.1 (pages must work offline), dead internal links and anchors, empty pages,
maths that does not typeset, and widgets that do not respond: on every frame player and gallery the
slider must change the displayed image, and every live model (dpattern.inspect.live) must be running. Screenshots go to `_docs_shots/` (ignored by git).
"""
import functools
import http.server
import json
import os
import re
import shutil
import sys
import threading
from urllib.parse import urldefrag, urlsplit

import pytest

from conftest import ROOT, require_browser, require_system_tool

sys.path.insert(0, str(ROOT / "tools"))
import build_site  # noqa: E402

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
SHOTS = ROOT / "_docs_shots"
SITE = ROOT / build_site.settings().get("doc_path", "_docs")

VISIBLE_IMAGES = """el => [...el.querySelectorAll('img')]
    .filter(i => i.offsetParent !== null && i.getBoundingClientRect().width > 0).map(i => i.src)"""


def _require_browser():
    """The browser test never skips: Chromium is installed when missing (as root, with apt-get; otherwise the
    failure names the command), and Playwright must be importable."""
    global CHROMIUM
    CHROMIUM = require_browser()


def test_browser_is_installed():
    _require_browser()


@pytest.fixture(scope="module")
def site():
    _require_browser()
    if not build_site.is_fresh(SITE):
        if not (build_site.CACHE / "npm" / ".stamp").exists():
            require_system_tool("npm")          # the build fetches require.js, the widget manager, MathJax
        build_site.build(SITE, jobs=2)
    return SITE


@pytest.fixture(scope="module")
def server(site):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def _check_widgets(page, rel, shot, report):
    "Move every slider of every frame player and gallery; the visible image must change each time."
    players = page.locator(".dpattern-player")
    for i in range(players.count()):
        box = players.nth(i)
        before = box.evaluate(VISIBLE_IMAGES)
        readout = box.locator(".widget-readout").first
        r0 = readout.inner_text().strip()
        handle = box.locator(".widget-slider .noUi-handle").first
        handle.focus()
        page.keyboard.press("ArrowRight")
        page.keyboard.press("ArrowRight")
        page.wait_for_timeout(200)
        after = box.evaluate(VISIBLE_IMAGES)
        r1 = readout.inner_text().strip()
        report["widgets"].append(dict(kind="player", index=i, images_before=len(before), images_after=len(after),
                                      changed=bool(after) and after != before, readout=(r0, r1)))
        if i == 0:
            box.screenshot(path=str(shot.with_name(shot.stem + "__player_after_slider.png")))
            box.locator(".widget-play button").first.click()       # play from here on
            page.wait_for_timeout(1200)
            box.locator(".widget-play button").nth(1).click()      # pause
            played = box.evaluate(VISIBLE_IMAGES)
            report["widgets"].append(dict(kind="play", index=i, changed=bool(played) and played != after,
                                          readout=(r1, readout.inner_text().strip())))
    lives = page.locator(".dpattern-live")
    for i in range(lives.count()):
        box = lives.nth(i)
        box.scroll_into_view_if_needed()
        read = f"(h => ({{kind: h.kind, renderer: h.renderer, sum: h.state().reduce((a, b) => a + Math.abs(b), 0)}}))" \
               f"(window.dpatternLive[{i}])"
        a = page.evaluate(read)
        page.wait_for_timeout(1500)
        b = page.evaluate(read)
        report["widgets"].append(dict(kind="live", index=i, model=a["kind"], renderer=a["renderer"],
                                      changed=a["sum"] != b["sum"]))
        box.screenshot(path=str(shot.with_name(shot.stem + f"__live{i}.png")))
    galleries = page.locator(".dpattern-gallery")
    for i in range(galleries.count()):
        box = galleries.nth(i)
        handles = box.locator(".widget-slider .noUi-handle")
        for j in range(handles.count()):
            before = box.evaluate(VISIBLE_IMAGES)
            handles.nth(j).focus()
            page.keyboard.press("ArrowRight")
            page.wait_for_timeout(200)
            after = box.evaluate(VISIBLE_IMAGES)
            report["widgets"].append(dict(kind="gallery", index=i, slider=j, images_before=len(before),
                                          images_after=len(after), changed=bool(after) and after != before))
        if i == 0:
            box.screenshot(path=str(shot.with_name(shot.stem + "__gallery_after_sliders.png")))


@pytest.fixture(scope="module")
def visits(site, server):
    "Open every page once; return what each page did (errors, links, ids, text length, widgets)."
    from playwright.sync_api import sync_playwright
    if SHOTS.exists():
        shutil.rmtree(SHOTS)
    SHOTS.mkdir()
    info = json.loads((site / build_site.BUILD_INFO).read_text())
    results = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        ctx = browser.new_context(viewport={"width": 1400, "height": 900})
        outside = []

        def block(route):                                           # nothing may leave 127.0.0.1
            outside.append(route.request.url)
            route.abort()
        ctx.route(re.compile(r"^(?!" + re.escape(server) + r")(https?|wss?|ftp)://"), block)
        for rel in sorted(info["pages"]):
            report = dict(errors=[], widgets=[])
            errs = report["errors"]
            page = ctx.new_page()
            page.on("console", lambda m, errs=errs: m.type == "error" and errs.append(f"console error: {m.text}"))
            page.on("pageerror", lambda e, errs=errs: errs.append(f"page error: {e}"))
            page.on("requestfailed", lambda r, errs=errs: errs.append(f"failed request: {r.url} ({r.failure})"))
            page.on("response", lambda r, errs=errs: r.status >= 400 and errs.append(f"HTTP {r.status}: {r.url}"))
            n_outside = len(outside)
            page.goto(server + rel, wait_until="networkidle")
            if page.locator('script[type="application/vnd.jupyter.widget-state+json"]').count():
                try:
                    page.wait_for_selector(".jupyter-widgets img, .jupyter-widgets .widget-slider, .dpattern-live canvas", state="visible",
                                           timeout=20000)
                except Exception as e:
                    errs.append(f"widgets did not render: {e}")
            if page.locator('script[src*="mathjax"]').count():
                page.wait_for_function("window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=20000)
                page.evaluate("MathJax.startup.promise")
                report["math"] = (page.locator("mjx-container").count(), page.locator("mjx-merror").count())
            page.wait_for_timeout(300)
            shot = SHOTS / (rel.replace("/", "__").removesuffix(".html") + ".png")
            page.screenshot(path=str(shot), full_page=True)
            report["text"] = page.inner_text("main")
            report["links"] = page.eval_on_selector_all("a[href]", "as => as.map(a => a.href)")
            report["ids"] = set(page.eval_on_selector_all("[id]", "es => es.map(e => e.id)"))
            _check_widgets(page, rel, shot, report)
            errs += [f"request outside the site: {u}" for u in outside[n_outside:]]
            results[rel] = report
            page.close()
        browser.close()
    return results


def test_every_notebook_is_a_page(site, visits):
    info = json.loads((site / build_site.BUILD_INFO).read_text())
    assert sorted(info["pages"].values()) == sorted(f"nbs/{f}" for f in build_site.notebooks(build_site.nbs_path()))
    assert set(visits) == set(info["pages"])


def test_no_console_errors_failed_or_outside_requests(visits):
    problems = [f"{rel}: {e}" for rel, r in visits.items() for e in r["errors"]]
    assert not problems, "\n".join(problems)


def test_no_page_is_empty(visits):
    short = {rel: len(r["text"]) for rel, r in visits.items() if len(r["text"].split()) < 40}
    assert not short, f"pages with (nearly) no text: {short}"
    for rel, r in visits.items():
        assert "#|" not in r["text"], f"{rel} shows a cell directive"
        assert "WARNING: THIS FILE WAS AUTOGENERATED" not in r["text"], rel


def test_no_dead_links(site, server, visits):
    dead = []
    for rel, r in visits.items():
        for href in r["links"]:
            if not href.startswith(server):
                continue
            url, frag = urldefrag(href)
            target = urlsplit(url).path.lstrip("/") or "index.html"
            path = site / target
            if path.is_dir():
                path, target = path / "index.html", target.rstrip("/") + "/index.html"
            if not path.is_file():
                dead.append(f"{rel}: {href} (no such file)")
            elif frag and target in visits and frag not in visits[target]["ids"]:
                dead.append(f"{rel}: {href} (no element with id {frag!r})")
    assert not dead, "\n".join(dead)


def test_api_reference_on_core_pages(visits):
    "nbdev's show_doc documents exported names (a heading with the name's id) on the API pages."
    ops = visits["core/operators.html"]
    assert {"laplacian", "gradient", "pad"} <= ops["ids"]
    assert {"frame_player", "gallery", "rgb_frames", "png_bytes"} <= visits["core/widgets.html"]["ids"]


def test_maths_typesets(visits):
    with_math = {rel: r["math"] for rel, r in visits.items() if "math" in r}
    assert "core/operators.html" in with_math
    bad = {rel: m for rel, m in with_math.items() if m[0] == 0 or m[1]}
    assert not bad, f"(formulas, errors) per page: {bad}"


def test_widget_sliders_change_the_frame(visits):
    widgets = [(rel, w) for rel, r in visits.items() for w in r["widgets"]]
    kinds = {w["kind"] for _, w in widgets}
    assert {"player", "play", "gallery"} <= kinds, f"widgets found: {widgets}"
    stuck = [(rel, w) for rel, w in widgets if not w["changed"]]
    assert not stuck, f"widgets whose image did not change: {stuck}"
    for rel, w in widgets:
        if w["kind"] in ("player", "gallery"):
            assert w["images_before"] == w["images_after"] == 1, (rel, w)   # exactly one frame shown
        if w["kind"] == "player":
            assert w["readout"][0] != w["readout"][1], (rel, w)
        if w["kind"] == "live":
            assert w["renderer"] in ("cpu", "webgl"), (rel, w)


def test_widgets_on_the_nca_and_gray_scott_pages(visits):
    "The NCA tutorial has a frame player, the PDE zoo a feed/kill gallery and a player; each slider moves the picture."
    for page, kind, count in [("tutorials/grow.html", "player", 1), ("tutorials/pde_zoo.html", "gallery", 2),
                              ("tutorials/pde_zoo.html", "player", 1), ("tutorials/grow.html", "live", 1),
                              ("tutorials/pde_zoo.html", "live", 1)]:
        found = [w for w in visits[page]["widgets"] if w["kind"] == kind]
        assert len(found) >= count, (page, kind, visits[page]["widgets"])
        assert all(w["changed"] for w in found), (page, found)
