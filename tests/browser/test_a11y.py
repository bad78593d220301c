"""Accessibility in a real browser (issue 9): an axe-core audit of every stage view, presenter
mode and the overview; keyboard operation with visible focus; a text alternative on every chart;
and prompt or token text that looks like HTML staying text inside the plotly charts.

axe-core comes bundled in the PyPI package axe-playwright-python; it is injected with
Playwright's evaluate, which the page's Content-Security-Policy does not block.
"""
import pytest
from playwright.sync_api import expect

from .conftest import new_page
from .test_page import STAGES, generate, open_stage, tid

BLOCKING = ("critical", "serious")


def audit(page, context=None):
    """axe-core's violations of impact critical or serious, as 'rule: target (summary)' lines."""
    from axe_playwright_python.sync_playwright import Axe
    results = Axe().run(page, context=context)
    return [f"{v['id']}: {' '.join(map(str, n['target']))} ({n.get('failureSummary', '').splitlines()[-1].strip()})"
            for v in results.response["violations"] if v["impact"] in BLOCKING for n in v["nodes"]]


@pytest.fixture(scope="module")
def sampled_page(browser, live_server):
    """A run with sampling (so the draw chart shows) and a decode step to look at."""
    page = new_page(browser, live_server)
    page.fill("#temperature", "0.8")
    page.fill("#top_k", "20")
    page.fill("#seed", "3")
    generate(page, tokens=3)
    yield page
    page.context.close()


@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_view_passes_axe(sampled_page, stage):
    page = sampled_page
    page.click("#steps-list li >> nth=1")
    open_stage(page, stage)
    page.wait_for_load_state("networkidle")
    expect(page.locator("#stage-body .caption, #stage-body table").first).to_be_visible()
    assert audit(page) == []


def test_presenter_mode_passes_axe(sampled_page):
    page = sampled_page
    open_stage(page, "attention")
    page.click("#presenter-btn")
    try:
        expect(page.locator("body")).to_have_class("presenter")
        expect(page.locator(tid("attention-heatmap"))).to_be_visible()
        assert audit(page) == []
    finally:
        page.click("#presenter-btn")


def test_a_speculative_run_passes_axe(page):
    """Accepted and rejected drafts are coloured text in the steps list and the sampling view."""
    page.check(tid("toggle-speculative"))
    generate(page, "one two three four. one two three four. one two", tokens=6)
    page.click("#steps-list li >> nth=1")
    open_stage(page, "sampling")
    expect(page.locator("#stage-body")).to_contain_text("Speculative decoding in this step")
    assert audit(page) == []


def test_the_page_before_any_run_passes_axe(page):
    expect(page.locator(tid("generate"))).to_be_enabled()
    assert audit(page) == []


def test_overview_passes_axe(sampled_page):
    """The animated overview (issue 8) lives in its own branch; this runs once it is on the page."""
    page = sampled_page
    overview = page.locator(tid("overview"))
    if overview.count() == 0:
        pytest.skip("no [data-testid=overview] on this page yet (issue 8)")
    page.emulate_media(reduced_motion="reduce")          # audit the picture at rest, not mid-flight
    try:
        page.click("#steps-list li >> nth=1")
        overview.scroll_into_view_if_needed()
        expect(overview).to_have_attribute("data-step", "1")
        assert audit(page) == []
    finally:
        page.emulate_media(reduced_motion="no-preference")


def test_every_chart_has_a_text_alternative(sampled_page):
    page = sampled_page
    page.click("#steps-list li >> nth=0")
    for stage in STAGES:
        open_stage(page, stage)
        page.wait_for_load_state("networkidle")
        for chart in page.locator("#stage-body .js-plotly-plot, #timing .js-plotly-plot").all():
            assert chart.get_attribute("role") == "img"
            assert len(chart.get_attribute("aria-label") or "") > 20, f"{stage}: a chart without a text alternative"
    open_stage(page, "attention")
    label = page.locator(tid("attention-heatmap")).get_attribute("aria-label")
    assert label.startswith("Attention heatmap, layer 0, head 0: 4 queries by 4 keys; the strongest weight")


def focused(page):
    return page.evaluate("""() => {
        const e = document.activeElement;
        return {id: e.id, testid: e.dataset.testid || null, text: e.textContent.trim().slice(0, 40),
                outline: getComputedStyle(e).outlineStyle, width: getComputedStyle(e).outlineWidth};
    }""")


def tab_to(page, predicate, limit=80):
    """Press Tab until the focused element satisfies predicate; -> its description."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        f = focused(page)
        if predicate(f):
            return f
    raise AssertionError("not reachable with Tab")


def test_keyboard_alone_runs_and_explores_with_visible_focus(page):
    """Tab to every kind of control, operate it with Enter or Space, and see where the focus is."""
    page.locator(tid("prompt")).focus()
    page.keyboard.press("Control+a")
    page.keyboard.type("The quick brown fox")
    page.fill("#max_new_tokens", "3")
    f = tab_to(page, lambda f: f["testid"] == "generate")
    assert f["outline"] != "none" and f["width"] != "0px", "focus must be visible"
    page.keyboard.press("Enter")
    expect(page.locator("#status")).to_contain_text("Done", timeout=120_000)
    play = page.locator("#play")                       # its label names the action; no inverted aria-pressed
    expect(play).to_have_text("Play")
    assert play.get_attribute("aria-pressed") is None

    tab_to(page, lambda f: f["testid"] == "stage-attention")
    page.keyboard.press("Enter")
    expect(page.locator(tid("stage-attention"))).to_have_class("active")
    f = tab_to(page, lambda f: f["text"] == "head 4")                 # a head thumbnail
    assert f["outline"] != "none"
    page.keyboard.press("Space")
    expect(page.locator(tid("attention-heatmap")).locator(".gtitle")).to_have_text("Layer 0, head 4")

    f = tab_to(page, lambda f: f["text"].startswith("1. decode"))       # a step in the list
    assert f["outline"] != "none"
    page.keyboard.press("Enter")
    expect(page.locator("#step-label")).to_contain_text("Step 1 of 2")
    page.locator(tid("prompt")).focus()
    f = tab_to(page, lambda f: f["testid"] == "token", limit=200)      # a generated token chip
    page.keyboard.press("Enter")
    expect(page.locator("#step-label")).to_contain_text("Step 0 of 2")
    assert f["outline"] != "none"


MARKUP = '<a href=x>go</a><b>bold</b> &amp; <br>fox'


def test_markup_in_a_prompt_stays_text_in_every_chart(page):
    """Plotly renders <a href>, <b> and <br> in labels, legends and tooltips: a prompt must not."""
    generate(page, MARKUP, tokens=2)
    prompt_labels = "".join(page.locator("#output-tokens .chip.prompt .txt").all_inner_texts())
    assert prompt_labels == MARKUP.replace(" ", "␣")
    plots = page.locator(".js-plotly-plot")
    for stage in STAGES:
        open_stage(page, stage)
        page.wait_for_load_state("networkidle")
        if stage != "tokenization":                               # the only stage drawn without plotly
            expect(page.locator("#stage-body .js-plotly-plot").first).to_be_visible()
        assert plots.locator("a").count() == 0, f"{stage}: a link inside a chart"
        assert plots.locator("text[style*='bold'], tspan[style*='bold']").count() == 0, f"{stage}: bold markup"
    page.click("#steps-list li >> nth=0")
    open_stage(page, "attention")
    ticks = page.locator(tid("attention-heatmap")).locator(".xtick text")
    expect(ticks).to_have_count(page.locator("#output-tokens .chip.prompt").count())
    assert "".join(ticks.all_text_contents()) == MARKUP.replace(" ", "␣")
    open_stage(page, "prediction")
    bars = page.locator("#stage-body .js-plotly-plot").first
    tick = bars.locator(".ytick text").first.bounding_box()
    area = bars.locator(".nsewdrag").bounding_box()
    page.mouse.move(area["x"] + 3, tick["y"] + tick["height"] / 2)       # over the most likely token's bar
    expect(bars.locator(".hoverlayer .hovertext")).to_have_count(1)
    hover = bars.locator(".hoverlayer .hovertext").text_content()
    assert bars.locator(".ytick text").first.text_content() in hover, hover
    assert bars.locator(".hoverlayer a").count() == 0

    legend = page.locator(tid("timing")).locator(".js-plotly-plot >> nth=0").locator(".legend text")
    names = " ".join(legend.all_text_contents())
    assert "“<a href=x>go</a>”" in names, names                   # the prompt's first 16 characters, as typed
    assert page.locator(tid("timing")).locator(".js-plotly-plot a").count() == 0
    assert page.dialogs == [] and page.errors == []
