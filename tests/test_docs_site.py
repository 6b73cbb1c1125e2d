"""The built documentation site, opened in headless Chromium through Playwright.

Checks that every page loads without console or page errors, that the navigation reaches
the model card of every registered model, that formulas are typeset by MathJax and that the
executed notebooks show their figures. Build the site first (see the README's docs command);
the tests skip, saying why, when the site, Playwright or a Chromium executable is missing.
"""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "docs" / "_build" / "html"
NOTEBOOKS = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
MATHJAX_TIMEOUT_MS = 30_000


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _pages() -> list[str]:
    """Every HTML page of the site, as a path relative to its root."""
    return sorted(str(p.relative_to(SITE)) for p in SITE.rglob("*.html") if "_static" not in p.parts)


@pytest.fixture(scope="module")
def site_url() -> Iterator[str]:
    """The built site served over HTTP on a free local port."""
    if not (SITE / "index.html").is_file():
        pytest.skip("docs site not built: run the README's docs command first")
    handler = functools.partial(_QuietHandler, directory=str(SITE))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (base signature)
        pass


@pytest.fixture(scope="module")
def browser(site_url: str):
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed")
    executable = _chromium()
    if executable is None:
        pytest.skip("no Chromium executable on PATH (Debian: apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    page = browser.new_page()
    page.problems = []
    page.on("console", lambda message: _is_error(message) and page.problems.append(message.text))
    page.on("pageerror", lambda error: page.problems.append(str(error)))
    page.on("requestfailed", lambda request: page.problems.append(f"failed request {request.url}"))
    yield page
    page.close()


def _is_error(message) -> bool:
    """A console error, except the browser's own request for a favicon the site has not."""
    return message.type == "error" and not message.location.get("url", "").endswith("/favicon.ico")


def _typeset(page) -> None:
    """Wait until MathJax has typeset the page (its queue has run)."""
    page.wait_for_function(
        "() => window.MathJax && MathJax.Hub && (window.__typeset || "
        "(MathJax.Hub.Queue(() => { window.__typeset = true; }), false))",
        timeout=MATHJAX_TIMEOUT_MS,
    )


def test_every_page_loads_without_errors(page, site_url):
    pages = _pages()
    assert len(pages) >= 10
    failures = {}
    for name in pages:
        page.problems.clear()
        response = page.goto(site_url + name, wait_until="load")
        if response is None or not response.ok:
            failures[name] = [f"HTTP {response.status if response else 'no response'}"]
        elif page.locator("script[src*='MathJax.js']").count():
            _typeset(page)
        if page.problems:
            failures[name] = list(page.problems)
    assert not failures


def test_navigation_reaches_every_model_card(page, site_url):
    from edgeopt.models.registry import MODEL_IDS

    page.goto(site_url + "index.html")
    page.locator(".sidebar-tree a", has_text="Model cards").first.click()
    page.wait_for_load_state("load")
    assert page.url.endswith("generated/models/index.html")
    for model_id in sorted(MODEL_IDS):
        card = page.locator(".sidebar-tree a", has_text=model_id).first
        card.click()
        page.wait_for_load_state("load")
        assert page.url.endswith(f"generated/models/{model_id}.html")
        assert model_id in page.locator("h1").first.inner_text()
        for section in ("Formulation", "Convergence terms", "Parameters", "Methods", "Measured scaling"):
            assert page.locator("h2", has_text=section).count() == 1, (model_id, section)
        assert page.locator("table").count() >= 4, model_id
        page.go_back()


def test_formulas_are_typeset_on_every_model_card(page, site_url):
    from edgeopt.models.registry import MODEL_IDS

    for model_id in sorted(MODEL_IDS):
        page.goto(site_url + f"generated/models/{model_id}.html")
        _typeset(page)
        formulas = page.locator("div.math").count()
        assert formulas >= 1, model_id
        assert page.locator("div.math .MathJax_Display, div.math .MathJax_SVG_Display").count() == formulas
        assert page.locator(".MathJax .merror, .MathJax_Error").count() == 0, model_id


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_notebook_pages_show_their_figures(page, site_url, notebook):
    page.goto(site_url + f"notebooks/{notebook}.html")
    figures = page.locator(".cell_output img")
    assert figures.count() >= 1
    for index in range(figures.count()):
        image = figures.nth(index)
        image.scroll_into_view_if_needed()
        assert image.evaluate("img => img.complete && img.naturalWidth > 0"), (notebook, index)
