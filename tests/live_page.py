"""Open `dpattern.inspect.live.html_page` pages in headless Chromium (Playwright, the system browser), offline."""
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


@contextmanager
def browser():
    "A headless Chromium that may load nothing from the network."
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM,
                              args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            yield b
        finally:
            b.close()


def open_page(b, html: str, viewport=(1000, 800)):
    "A page showing `html` from a file; network requests are refused and page errors raise at `check(page)`."
    ctx = b.new_context(viewport={"width": viewport[0], "height": viewport[1]})
    outside = []

    def block(route):
        outside.append(route.request.url)
        route.abort()
    ctx.route("http*://**", block)
    page = ctx.new_page()
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(f"page error: {e}"))
    page.on("console", lambda m: m.type == "error" and page.errors.append(f"console error: {m.text}"))
    page.outside = outside
    d = Path(tempfile.mkdtemp(prefix="dpattern-live-"))
    (d / "page.html").write_text(html, encoding="utf-8")
    page.goto((d / "page.html").as_uri())
    page.wait_for_function("window.dpatternLiveReady === true", timeout=30000)
    check(page)
    return page


def check(page):
    "Fail on page errors or attempted network requests so far."
    problems = page.errors + [f"request outside the page: {u}" for u in page.outside]
    assert not problems, "\n".join(problems)


def hook(page, i: int = 0) -> str:
    "JavaScript for the test hook of widget `i`."
    return f"window.dpatternLive[{i}]"


def state(page, shape, i: int = 0) -> np.ndarray:
    "The state `[C, H, W]` of widget `i`, read back from the page."
    return np.asarray(page.evaluate(f"{hook(page, i)}.state()"), np.float32).reshape(shape)
