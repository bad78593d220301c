"""The page while its run waits in line (issue 11): the status line says how many are ahead,
and the run streams as soon as a slot is free."""
import threading

import pytest
from playwright.sync_api import expect

from .conftest import new_page


@pytest.fixture(scope="module")
def one_slot_server(real_model):
    """(base URL, app): the real app with a single slot (LLMVIZ_MAX_ACTIVE=1)."""
    from werkzeug.serving import make_server

    from llmviz.web import close_app, create_app
    app = create_app({"TESTING": True, "LLMVIZ_MODEL": real_model, "LLMVIZ_MAX_ACTIVE": 1})
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="llmviz-test-one-slot", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", app
    server.shutdown()
    thread.join(timeout=10)
    close_app(app)


def test_the_status_line_says_how_many_are_ahead(browser, one_slot_server):
    url, app = one_slot_server
    admission = app.extensions["llmviz"]["admission"]
    someone = admission.enter()                      # another student's run holds the only slot
    page = new_page(browser, url)
    try:
        page.fill("[data-testid=prompt]", "The quick brown fox")
        page.fill("#max_new_tokens", "3")
        page.click("[data-testid=generate]")
        expect(page.locator("#status")).to_have_text("waiting: 0 ahead of you")
        someone.leave()
        expect(page.locator("#status")).to_contain_text("Done", timeout=120_000)
        assert [t.strip() for t in page.locator("[data-testid=token]").all_inner_texts()] == ["␣with", "␣a", "␣quick"]
    finally:
        someone.leave()
        page.context.close()
