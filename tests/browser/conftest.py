"""Browser-test fixtures: the real app on a free port, and Debian's chromium driven by Playwright.

The app runs in this process (werkzeug's threaded server on 127.0.0.1, port chosen by
the OS) with the session's real model. Screenshots go to test-output/screenshots/.
"""
import shutil
import threading
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
SHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"


@pytest.fixture(scope="session")
def live_server(real_model):
    """Base URL of the real app, serving in a background thread."""
    from werkzeug.serving import make_server

    from llmviz.web import create_app
    app = create_app({"TESTING": True, "LLMVIZ_MODEL": real_model, "LLMVIZ_WARMUP": True})  # as app.py does
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="llmviz-test-server", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


@pytest.fixture(scope="session")
def browser():
    if not shutil.which(CHROMIUM):
        pytest.fail(f"the browser tests need Debian's chromium at {CHROMIUM}: run `make chromium`")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def shots():
    SHOTS.mkdir(parents=True, exist_ok=True)
    return SHOTS


def new_page(browser, live_server, path="/"):
    """A fresh page that records dialogs (an executed alert() would show up here)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    page.dialogs = []
    page.errors = []
    page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.set_default_timeout(60_000)
    page.goto(live_server + path)
    return page


@pytest.fixture()
def page(browser, live_server):
    page = new_page(browser, live_server)
    yield page
    page.context.close()


# Hold a streamed run after its first step until the test releases it: the run is computed by the
# real engine, only its delivery to the page waits, so a fast machine cannot finish the run before
# the test has clicked what it means to click while tokens are still arriving.
HOLD_STREAM = """() => {
  const realFetch = window.fetch;
  let release;
  window.streamGate = new Promise((r) => { release = r; });
  window.releaseStream = () => release();
  window.fetch = async (url, options) => {
    const response = await realFetch(url, options);
    if (!String(url).endsWith('/api/stream') || !response.ok) return response;
    let seen = '';
    const held = response.body.pipeThrough(new TransformStream({
      async transform(chunk, controller) {
        if (seen.includes('event: step')) await window.streamGate;
        seen += new TextDecoder().decode(chunk);
        controller.enqueue(chunk);
      },
    }));
    return new Response(held, { status: response.status, headers: response.headers });
  };
}"""


def hold_stream_after_first_step(page):
    """Until release_stream(page), a streamed run's events after the first step wait in the page."""
    page.evaluate(HOLD_STREAM)


def release_stream(page):
    page.evaluate("window.releaseStream()")
