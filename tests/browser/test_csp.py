"""The Content-Security-Policy in a real browser: the page works under it (every stage draws,
plotly included, with no CSP violation), and it really blocks inline script (issue 5)."""
from playwright.sync_api import expect

from .conftest import new_page
from .test_page import STAGES, generate, open_stage, tid


def csp_messages(page):
    return [m for m in page.console if "Content Security Policy" in m]


def test_every_stage_draws_under_the_csp_without_violations(browser, live_server):
    page = new_page(browser, live_server)
    page.console = []
    page.on("console", lambda m: page.console.append(m.text))
    page.reload()                                  # collect console messages from the first load on
    try:
        generate(page, tokens=2)
        for stage in STAGES:
            open_stage(page, stage)
            expect(page.locator("#stage-body")).not_to_be_empty()
        open_stage(page, "attention")
        labels = page.locator(tid("attention-heatmap")).locator(".xtick text")
        expect(labels.first).to_be_visible()       # plotly drew the heatmap with the token labels
        assert csp_messages(page) == []
        assert page.errors == []
    finally:
        page.context.close()


def test_inline_script_is_blocked(browser, live_server):
    page = new_page(browser, live_server)
    page.console = []
    page.on("console", lambda m: page.console.append(m.text))
    try:
        page.evaluate("""() => {
            const s = document.createElement('script');
            s.textContent = 'window.__inlineRan = true';
            document.body.appendChild(s);
            const img = document.createElement('img');
            img.setAttribute('onerror', 'window.__handlerRan = true');
            img.src = 'data:,not-an-image';
            document.body.appendChild(img);
        }""")
        page.wait_for_timeout(300)
        assert page.evaluate("() => [window.__inlineRan, window.__handlerRan]") == [None, None]
        assert csp_messages(page), "the browser should report the blocked inline script"
    finally:
        page.context.close()
