"""The overview picture in a real browser, on real runs (issue 8): what each element shows
equals the API's record of the step, the pulse runs the stages in pipeline order, reduced
motion changes state without movement, and playing stays smooth on this 2-core machine.

Measurements (frame times during Play, the cost of one in-place update) are printed and
written to test-output/overview-perf.txt; run with -s to see them.
"""
import re
import statistics
import time

import pytest
from playwright.sync_api import expect

from .conftest import SHOTS, new_page

PROMPT = "The quick brown fox"
REPEAT = "one two three four five, one two three four five, one two three"   # prompt lookup drafts here
BATCH = ["The capital of France is", "Once upon a time", "def fibonacci(n):"]
OV = "[data-testid=overview]"
L = 30
ONE_STEP = ["tokenization", "embedding"] + ["attention", "feedforward"] * L + ["prediction", "sampling", ""]

# Reconstructs every value data-active-stage / data-step took, in order, from a MutationObserver
# with old values (a record's new value is the old value of the next record of that attribute).
OBSERVE = """() => {
  const svg = document.querySelector('[data-testid=overview]');
  window.__rec = [];
  window.__obs = new MutationObserver((ms) => {
    for (const m of ms) window.__rec.push([m.attributeName, m.oldValue]);
  });
  window.__obs.observe(svg, { attributes: true, attributeOldValue: true,
                              attributeFilter: ['data-active-stage', 'data-step'] });
}"""
SEQUENCE = """() => {
  const svg = document.querySelector('[data-testid=overview]');
  const rec = window.__rec;
  const next = { 'data-active-stage': svg.getAttribute('data-active-stage'),
                 'data-step': svg.getAttribute('data-step') };
  const after = [];
  for (let i = rec.length - 1; i >= 0; i -= 1) { const [a, old] = rec[i]; after[i] = [a, next[a]]; next[a] = old; }
  const state = { ...next };
  const seq = [];
  for (const [a, v] of after) {
    state[a] = v;
    if (a === 'data-active-stage') seq.push([Number(state['data-step']), v]);
  }
  return seq;
}"""
# Every requestAnimationFrame interval, and whether the moving parts were ever visible.
FRAMES = """() => {
  window.__frames = []; window.__moved = { dot: false, fly: false, animations: 0 };
  let last = null;
  const tick = (t) => {
    if (last !== null) window.__frames.push(t - last);
    last = t;
    const svg = document.querySelector('[data-testid=overview]');
    if (svg.querySelector('.ov-dot').getAttribute('visibility') === 'visible') window.__moved.dot = true;
    if (svg.querySelector('.ov-chip.fly').getAttribute('visibility') === 'visible') window.__moved.fly = true;
    window.__moved.animations = Math.max(window.__moved.animations, svg.getAnimations({ subtree: true }).length);
    if (!window.__stopFrames) requestAnimationFrame(tick);
  };
  window.__stopFrames = false;
  requestAnimationFrame(tick);
}"""


def tid(name):
    return f"[data-testid={name}]"


def visible(text):
    """A token as the page shows it (static/js/dom.js visible())."""
    return text.replace(" ", "␣").replace("\n", "↵").replace("\t", "⇥")


def watch(page):
    """Record the run id (from the overview's own requests) and every console error."""
    page.overview_urls, page.console_errors = [], []
    page.on("request", lambda r: page.overview_urls.append(r.url) if "/overview" in r.url else None)
    page.on("console", lambda m: page.console_errors.append(m.text) if m.type == "error" else None)
    return page


def run_id(page):
    return page.overview_urls[-1].split("/api/runs/")[1].split("/")[0]


def api(page, live_server, path):
    r = page.request.get(f"{live_server}/api/{path}")
    assert r.ok, r.text()
    return r.json()


def generate(page, prompt, tokens, *, kv_cache=True, speculative=False):
    page.fill(tid("prompt"), prompt)
    page.fill(tid("max-new-tokens"), str(tokens))
    page.set_checked("#kv_cache", kv_cache)
    page.set_checked("#speculative", speculative)
    page.click(tid("generate"))
    expect(page.locator("#status")).to_contain_text("Done", timeout=180_000)


def settled(page, step):
    """The overview shows `step` and its motion is over."""
    expect(page.locator(f"{OV}.settled[data-step='{step}']")).to_have_count(1, timeout=60_000)


def show_step(page, step):
    page.click(f"#steps-list li >> nth={step}")
    settled(page, step)


def check_step(page, live_server, rid, s):
    """Everything the picture shows of step s against the API's record of it."""
    summary = api(page, live_server, f"runs/{rid}/steps/{s}")
    lens = api(page, live_server, f"runs/{rid}/steps/{s}/logit-lens")["layers"]
    ov = page.locator(OV)
    expect(ov).to_have_attribute("data-step", str(s))
    expect(page.locator(tid("overview-layer"))).to_have_count(L)
    assert page.locator(tid("overview-lens")).all_text_contents() == [visible(cands[0]["text"]) for cands in lens]
    start, end = summary["positions"]
    spec = summary.get("speculative") or {}
    held = end - spec.get("discarded_rows", 0)
    cells = page.locator(tid("overview-kv-cell"))
    expect(cells).to_have_count(held)
    states = [cells.nth(i).get_attribute("data-state") for i in range(held)]
    reused = summary["kv"]["reused_rows"]
    assert states == ["reused"] * reused + ["computed"] * (held - reused)
    assert page.locator(tid("overview-output")).all_text_contents() == [visible(t["text"]) for t in summary["emitted"]]
    return summary


@pytest.fixture(scope="module")
def plain(browser, live_server):
    page = watch(new_page(browser, live_server))
    generate(page, PROMPT, 4)
    settled(page, 3)
    page.stream_updates = page.evaluate("() => performance.getEntriesByName('overview-update').map((e) => e.duration)")
    yield page
    page.context.close()


def test_plain_run_shows_the_apis_lens_kv_cells_and_output(plain, live_server):
    page = plain
    rid = run_id(page)
    for s in (0, 2, 3):
        show_step(page, s)
        summary = check_step(page, live_server, rid, s)
        if s == 0:
            assert summary["kind"] == "prefill" and summary["kv"]["reused_rows"] == 0
    expect(page.locator(tid("overview-draft"))).to_have_count(0)
    expect(page.locator(tid("overview-lane"))).to_have_count(0)
    # one request per step shown, never one per step computed
    assert len(page.overview_urls) <= 4 + 3
    assert page.console_errors == [] and page.errors == []


def test_clicking_a_block_or_a_stage_opens_its_detail_view(plain):
    page = plain
    page.locator(f"{tid('overview-layer')}[data-layer='7'] .ov-ffn").click()
    expect(page.locator("#stage-body")).to_have_attribute("data-stage", "feedforward")
    expect(page.locator("select[name=Layer]")).to_have_value("7")
    expect(page.locator(tid("stage-feedforward"))).to_have_class("active")
    page.locator(".ov-blocks").focus()
    page.keyboard.press("ArrowRight")
    expect(page.locator(".ov-blocks")).to_have_attribute("aria-valuenow", "8")
    page.keyboard.press("Enter")
    expect(page.locator("#stage-body")).to_have_attribute("data-stage", "attention")
    expect(page.locator("select[name=Layer]")).to_have_value("8")
    page.locator(".ov-head[data-stage=prediction]").click()
    expect(page.locator("#stage-body")).to_have_attribute("data-stage", "prediction")
    expect(page.locator(".ov-head[data-stage=prediction]")).to_have_class(re.compile(r"\bsel\b"))


def test_play_runs_the_stages_in_pipeline_order_smoothly(plain, shots):
    page = plain
    show_step(page, 3)
    page.evaluate(OBSERVE)
    page.evaluate(FRAMES)
    page.evaluate("() => performance.clearMeasures('overview-update')")
    page.click(tid("play"))                                   # from the last step, Play starts at step 0
    expect(page.locator(tid("play"))).to_have_text("Pause")
    expect(page.locator(tid("play"))).to_have_text("Play", timeout=120_000)
    settled(page, 3)
    page.evaluate("() => { window.__stopFrames = true; }")
    seq = page.evaluate(SEQUENCE)
    by_step = {}
    for step, stage in seq:
        stages = by_step.setdefault(step, [])
        if not stages or stages[-1] != stage:
            stages.append(stage)
    assert sorted(by_step) == [0, 1, 2, 3]
    for step, stages in by_step.items():
        assert stages == ONE_STEP, f"step {step}: {stages}"
    frames = page.evaluate("() => window.__frames")
    p95 = statistics.quantiles(frames, n=20)[-1]
    updates = page.evaluate("() => performance.getEntriesByName('overview-update').map((e) => e.duration)")
    report = (f"Play, 4 steps at 1x: {len(frames)} frames, requestAnimationFrame interval median "
              f"{statistics.median(frames):.1f} ms, p95 {p95:.1f} ms, max {max(frames):.1f} ms\n"
              f"overview update in place per step: {len(updates)} updates, median {statistics.median(updates):.1f} ms, "
              f"max {max(updates):.1f} ms\n"
              f"overview update while the run streamed in: {len(page.stream_updates)} updates, "
              f"max {max(page.stream_updates):.1f} ms\n")
    print(report)
    (shots.parent / "overview-perf.txt").write_text(report)
    assert p95 <= 50, report
    moved = page.evaluate("() => window.__moved")
    assert moved["dot"] and moved["fly"], "the pulse moves and the emitted token flies back"
    assert statistics.median(updates + page.stream_updates) < 50, report


def test_the_speed_control_scales_the_motion(plain):
    page = plain

    def replay_seconds(speed):
        page.select_option(tid("overview-speed"), speed)
        t0 = time.perf_counter()
        page.click(tid("overview-replay"))
        expect(page.locator(f"{OV}.settled")).to_have_count(0)
        expect(page.locator(f"{OV}.settled")).to_have_count(1, timeout=30_000)
        return time.perf_counter() - t0

    try:
        normal, fast = replay_seconds("1"), replay_seconds("4")
    finally:
        page.select_option(tid("overview-speed"), "1")
    print(f"one step's motion: {normal:.2f} s at 1x, {fast:.2f} s at 4x")
    assert normal >= 1.0 and fast < normal / 2


def test_presenter_mode_shows_the_overview_large(plain):
    page = plain
    page.click("#presenter-btn")
    try:
        page.keyboard.press("ArrowRight")                     # presenter stepping keeps the overview on screen
        box = page.locator(OV).bounding_box()
        view = page.viewport_size
        assert box["width"] >= 0.9 * view["width"] and box["y"] >= 0 and box["y"] + box["height"] <= view["height"]
        expect(page.locator("#run-form")).to_be_hidden()
    finally:
        page.click("#presenter-btn")


def test_the_draw_u_lands_in_the_chosen_tokens_slice(browser, live_server):
    page = watch(new_page(browser, live_server))
    try:
        page.fill("#temperature", "0.9")
        page.fill("#seed", "5")
        generate(page, PROMPT, 3)
        settled(page, 2)
        summary = api(page, live_server, f"runs/{run_id(page)}/steps/2")["sampling"]
        u = page.locator(".ov-u")
        expect(u).to_have_attribute("visibility", "visible")
        expect(page.locator(".ov-samp")).to_contain_text(f"u = {summary['u']:.3f}")
        chosen = page.locator(".ov-cand.chosen")
        expect(chosen).to_have_count(1)
        y, top, height = (float(v) for v in (u.get_attribute("y1"), chosen.get_attribute("y"),
                                              chosen.get_attribute("height")))
        assert top <= y <= top + height, (y, top, height)
    finally:
        page.context.close()


def test_kv_cache_off_recomputes_every_cell(browser, live_server):
    page = watch(new_page(browser, live_server))
    try:
        generate(page, PROMPT, 3, kv_cache=False)
        settled(page, 2)
        summary = check_step(page, live_server, run_id(page), 2)
        assert summary["kv"]["reused_rows"] == 0
        states = page.locator(tid("overview-kv-cell")).evaluate_all("(cells) => cells.map((c) => c.dataset.state)")
        assert states == ["computed"] * 6
        expect(page.locator(".ov-note", has_text="KV cache off: all 6 positions recomputed")).to_have_count(1)
        assert page.console_errors == [] and page.errors == []
    finally:
        page.context.close()


def test_speculative_drafts_turn_solid_or_fall_away_as_the_run_decided(browser, live_server, shots):
    page = watch(new_page(browser, live_server))
    try:
        generate(page, REPEAT, 8, speculative=True)
        rid = run_id(page)
        steps = api(page, live_server, f"runs/{rid}")["steps"]
        drafting = [s for s in steps if s.get("speculative") and s["speculative"]["draft_tokens"]]
        assert drafting, "prompt lookup should draft on a repetitive prompt"
        for step in drafting:
            show_step(page, step["index"])
            check_step(page, live_server, rid, step["index"])
            sp = step["speculative"]
            drafts = page.locator(tid("overview-draft"))
            expect(drafts).to_have_count(len(sp["draft_tokens"]))
            accepted = drafts.evaluate_all("(ds) => ds.map((d) => d.dataset.accepted)")
            assert accepted == [str(i < sp["accepted"]).lower() for i in range(len(sp["draft_tokens"]))]
        assert any(s["speculative"]["accepted"] < len(s["speculative"]["draft_tokens"]) for s in drafting)
        show_step(page, drafting[0]["index"])
        page.locator("#overview-panel").screenshot(path=shots / "overview-speculative.png")
        assert page.console_errors == [] and page.errors == []
    finally:
        page.context.close()


def test_a_batch_of_three_crosses_the_blocks_in_three_lanes(browser, live_server, shots):
    page = watch(new_page(browser, live_server))
    try:
        page.check("#batching")
        page.fill(tid("batch-prompts"), "\n".join(BATCH))
        page.fill(tid("max-new-tokens"), "3")
        page.click(tid("generate"))
        expect(page.locator("#status")).to_contain_text("Done: a batch of 3", timeout=180_000)
        settled(page, 0)
        expect(page.locator(tid("overview-lane"))).to_have_count(0)     # prompts are prefilled one by one
        show_step(page, 1)
        lanes = page.locator(tid("overview-lane"))
        expect(lanes).to_have_count(3)
        for i, prompt in enumerate(BATCH):
            expect(lanes.nth(i)).to_contain_text(prompt[:20])
        expect(lanes.filter(has_text="(this run)")).to_have_count(1)
        page.locator("#overview-panel").screenshot(path=shots / "overview-batch.png")
        assert page.console_errors == [] and page.errors == []
    finally:
        page.context.close()


def test_reduced_motion_changes_state_without_movement(browser, live_server):
    context = browser.new_context(viewport={"width": 1280, "height": 720}, reduced_motion="reduce")
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    watch(page)
    try:
        page.goto(live_server)
        generate(page, PROMPT, 2)
        settled(page, 1)
        page.evaluate(OBSERVE)
        page.evaluate(FRAMES)
        page.click(tid("overview-replay"))
        expect(page.locator(f"{OV}.settled")).to_have_count(0)
        settled(page, 1)
        page.evaluate("() => { window.__stopFrames = true; }")
        stages = [stage for _, stage in page.evaluate(SEQUENCE)]
        assert [s for i, s in enumerate(stages) if i == 0 or stages[i - 1] != s] == ONE_STEP
        assert page.evaluate("() => window.__moved") == {"dot": False, "fly": False, "animations": 0}
        assert page.errors == [] and page.console_errors == []
    finally:
        context.close()


@pytest.mark.parametrize("width,height", [(1440, 900), (1280, 720)])
def test_the_overview_is_the_first_screen_after_generate(browser, live_server, width, height):
    context = browser.new_context(viewport={"width": width, "height": height})
    page = watch(context.new_page())
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    try:
        page.goto(live_server)
        generate(page, "The capital of France is", 6)
        settled(page, 5)
        page.screenshot(path=SHOTS / f"overview-{width}x{height}.png")
        box = page.locator(OV).bounding_box()
        assert box["y"] >= 0 and box["y"] + box["height"] <= height, box
        assert box["width"] >= width * 0.9
        # projector-readable: the token texts are drawn at 12 CSS px or more
        size = page.locator(tid("overview-lens")).first.evaluate(
            "(t) => parseFloat(getComputedStyle(t).fontSize) * t.ownerSVGElement.getBoundingClientRect().width / 1280")
        assert size >= 12, size
        assert page.errors == [] and page.console_errors == []
    finally:
        context.close()
