"""The page in a real browser, on the real model: streaming, the six stages, stepping,
the optimization toggles and the timing panel, permalinks, export/import, presenter
mode and a prompt that contains HTML. Screenshots land in test-output/screenshots/.

Greedy decoding of "The quick brown fox" continues " with a quick brown bear." .
"""
import json
import re
import time

import pytest
from playwright.sync_api import expect

from .conftest import hold_stream_after_first_step, new_page, release_stream

PROMPT = "The quick brown fox"
GREEDY = ["␣with", "␣a", "␣quick", "␣brown", "␣bear", "."]      # as the page shows them (␣ = space)
PROMPT_LABELS = ["The", "␣quick", "␣brown", "␣fox"]
STAGES = ["tokenization", "embedding", "attention", "feedforward", "prediction", "sampling"]


def tid(name):
    return f"[data-testid={name}]"


def generate(page, prompt=PROMPT, tokens=4, keyboard=False):
    page.fill(tid("prompt"), prompt)
    page.fill("#max_new_tokens", str(tokens))
    if keyboard:
        page.focus(tid("prompt"))
        page.keyboard.press("Control+Enter")
    else:
        page.click(tid("generate"))
    expect(page.locator("#status")).to_contain_text("Done", timeout=120_000)


def token_texts(page):
    return [t.strip() for t in page.locator(tid("token")).all_inner_texts()]


def open_stage(page, stage):
    page.click(tid(f"stage-{stage}"))
    expect(page.locator(tid(f"stage-{stage}"))).to_have_class("active")
    expect(page.locator("#stage-body")).to_have_attribute("data-stage", stage)


@pytest.fixture(scope="module")
def run_page(browser, live_server):
    """One page with a streamed greedy run of 6 tokens, started with Ctrl+Enter."""
    page = new_page(browser, live_server)
    page.fill(tid("prompt"), PROMPT)
    page.fill("#max_new_tokens", "6")
    page.focus(tid("prompt"))
    # Note, in the page, the moment the first generated token enters the text: how many there are
    # then and whether the run is still going (polling from here could miss a fast run's moment).
    page.evaluate("""() => {
      const box = document.querySelector('#output-tokens');
      new MutationObserver((_, observer) => {
        const n = box.querySelectorAll('[data-testid=token]').length;
        if (!n) return;
        window.firstToken = {n, running: !document.querySelector('#stop').disabled};
        observer.disconnect();
      }).observe(box, {childList: true, subtree: true});
    }""")
    t0 = time.perf_counter()
    page.keyboard.press("Control+Enter")
    page.wait_for_selector(tid("token"))
    page.first_token_s = time.perf_counter() - t0
    first = page.evaluate("window.firstToken")
    page.tokens_at_first, page.running_at_first = first["n"], first["running"]
    expect(page.locator("#status")).to_contain_text("Done", timeout=120_000)
    yield page
    page.context.close()


def test_tokens_stream_in_as_they_are_computed(run_page, shots):
    page = run_page
    assert page.tokens_at_first < 6 and page.running_at_first, "the first token should show before the run ends"
    assert token_texts(page) == GREEDY
    expect(page.locator("#steps-list li")).to_have_count(6)
    ttft = page.locator(tid("ttft") + " .v").inner_text()
    prefill = page.locator("#steps-list li >> nth=0").locator(".ms").inner_text()
    (shots.parent / "time-to-first-token.txt").write_text(
        f"first token on screen (measured by the page): {ttft}\n"
        f"first token on screen (measured by the test, key press to visible): {page.first_token_s:.3f} s\n"
        f"of which the model's prefill step computed for: {prefill}\n")
    page.screenshot(path=shots / "overview.png")


def test_tokenization_shows_chips_with_ids(run_page, shots):
    page = run_page
    page.click("#steps-list li >> nth=0")
    open_stage(page, "tokenization")
    chips = page.locator("#stage-body .chip")
    expect(chips).to_have_count(4)
    assert [c.split("\n")[0] for c in chips.all_inner_texts()] == PROMPT_LABELS
    assert chips.nth(1).locator(".id").inner_text() == "2365"            # " quick"
    expect(page.locator("#stage-body")).to_contain_text("19 characters became 4 tokens")
    page.screenshot(path=shots / "stage-tokenization.png")


def test_embedding_shows_vectors_rotary_angles_and_pca(run_page, shots):
    page = run_page
    page.click("#steps-list li >> nth=0")
    open_stage(page, "embedding")
    body = page.locator("#stage-body")
    expect(body).to_contain_text("Token vectors (576 numbers each)")
    expect(body).to_contain_text("Position: rotary angles (Llama family)")
    expect(body.locator(".js-plotly-plot")).to_have_count(3)
    pca_labels = body.locator(".js-plotly-plot >> nth=2").locator(".textpoint text").all_text_contents()
    assert sorted(pca_labels) == sorted(PROMPT_LABELS)
    page.screenshot(path=shots / "stage-embedding.png")


def test_attention_heatmap_is_labelled_with_the_prompt_tokens(run_page, shots):
    page = run_page
    page.click("#steps-list li >> nth=0")
    open_stage(page, "attention")
    heat = page.locator(tid("attention-heatmap"))
    expect(heat.locator(".xtick text")).to_have_count(4)
    assert heat.locator(".xtick text").all_text_contents() == PROMPT_LABELS
    assert heat.locator(".ytick text").all_text_contents() == PROMPT_LABELS
    expect(page.locator(".grid-heads canvas")).to_have_count(9)
    page.select_option("select[name=Head]", "4")
    expect(heat.locator(".gtitle")).to_have_text("Layer 0, head 4")
    box = heat.locator(".nsewdrag").first.bounding_box()         # the plot area: 4 x 4 cells
    page.mouse.move(box["x"] + box["width"] * 1.5 / 4, box["y"] + box["height"] * 3.5 / 4)   # row 3, column 1
    expect(heat.locator(".hovertext")).to_contain_text(re.compile(r"query ␣fox \(#3\) → key ␣quick \(#1\): "
                                                                  r"weight 0\.\d{3}"))
    page.screenshot(path=shots / "stage-attention.png")
    # a decode step: one query row against the cached keys
    page.click("#steps-list li >> nth=2")
    expect(page.locator("#stage-body")).to_contain_text("5 key/value rows came from the KV cache")
    assert heat.locator(".xtick text").all_text_contents() == PROMPT_LABELS + GREEDY[:2]
    page.screenshot(path=shots / "stage-attention-decode.png")


def test_feedforward_shows_activations_and_residual_growth(run_page, shots):
    page = run_page
    open_stage(page, "feedforward")
    page.select_option("select[name=Layer]", "12")
    body = page.locator("#stage-body")
    expect(body).to_contain_text("1536 hidden units after SwiGLU")
    expect(body.locator(".gtitle").first).to_have_text("Activations, layer 12")
    expect(body.locator(".js-plotly-plot")).to_have_count(3)
    page.screenshot(path=shots / "stage-feedforward.png")


def test_prediction_shows_bars_and_logit_lens(run_page, shots):
    page = run_page
    page.click("#steps-list li >> nth=0")
    open_stage(page, "prediction")
    body = page.locator("#stage-body")
    expect(body).to_contain_text("Most likely next token: ␣with")
    expect(body.locator(".ytick text")).to_have_count(10)
    assert "␣with (351)" in body.locator(".ytick text").all_text_contents()
    expect(body.locator("table.lens tbody tr")).to_have_count(30)
    assert body.locator("table.lens tbody tr").last.locator("td").first.inner_text().startswith("␣with")
    page.screenshot(path=shots / "stage-prediction.png")


def test_sampling_shows_the_choice_and_candidates(run_page, shots):
    page = run_page
    page.click("#steps-list li >> nth=0")
    open_stage(page, "sampling")
    body = page.locator("#stage-body")
    expect(body).to_contain_text("Temperature 0: greedy decoding.")
    expect(body.locator("button.chosen")).to_contain_text("␣with")
    expect(body.locator(tid("candidate"))).to_have_count(10)
    page.screenshot(path=shots / "stage-sampling.png")


def test_step_back_and_forward(run_page):
    page = run_page
    page.click("#steps-list li >> nth=3")
    open_stage(page, "sampling")
    expect(page.locator("#step-label")).to_contain_text("Step 3 of 5")
    page.click("#prev-step")                            # sampling -> prediction of the same step
    expect(page.locator(tid("stage-prediction"))).to_have_class("active")
    page.click("#next-step")
    page.click("#next-step")                            # past sampling: the next step's tokenization
    expect(page.locator("#step-label")).to_contain_text("Step 4 of 5")
    expect(page.locator(tid("stage-tokenization"))).to_have_class("active")
    page.locator("#step-slider").fill("1")
    expect(page.locator("#step-label")).to_contain_text("Step 1 of 5")
    expect(page.locator("#steps-list li.active")).to_contain_text("␣a")
    expect(page.locator(".chip.current")).to_have_text("␣a")


def test_model_card_and_architecture_family(run_page):
    card = run_page.locator(tid("model-card"))
    expect(card).to_contain_text("SmolLM2-135M-Instruct: the model card")
    expect(card).to_contain_text("9 query heads sharing 3 key/value heads")
    expect(card).to_contain_text("Q4_1")
    assert run_page.locator("#arch-table td.current").count() == 4          # the Llama column is marked
    expect(run_page.locator("#arch-table td.current").first).to_contain_text("Rotary")


def test_timing_panel_shows_the_runs_measurements(run_page, shots):
    timing = run_page.locator(tid("timing"))
    expect(timing).to_contain_text("KV cache on · fp32")
    expect(timing).to_contain_text("weights (fp32)")
    expect(timing.locator(tid("tokens-per-second") + " .v")).to_contain_text("tokens/s")
    timing.screenshot(path=shots / "timing.png")


def test_presenter_mode_and_keys(run_page, shots):
    page = run_page
    page.click("#steps-list li >> nth=0")
    open_stage(page, "tokenization")
    page.click("#presenter-btn")
    expect(page.locator("body")).to_have_class("presenter")
    size = float(page.locator("body").evaluate("b => getComputedStyle(b).fontSize").removesuffix("px"))
    assert size >= 20, "presenter mode should use large type"             # 15px normally; 1.6vw at 1400px
    page.locator("#stage-title").click()                # keys go to the page, not a form field
    page.keyboard.press("ArrowRight")
    expect(page.locator(tid("stage-embedding"))).to_have_class("active")
    page.keyboard.press("Space")
    expect(page.locator(tid("stage-attention"))).to_have_class("active")
    page.keyboard.press("ArrowLeft")
    expect(page.locator(tid("stage-embedding"))).to_have_class("active")
    page.screenshot(path=shots / "presenter.png")
    page.click("#presenter-btn")
    expect(page.locator("body")).not_to_have_class("presenter")


def test_permalink_recreates_the_run_and_view(run_page, browser, live_server):
    run_page.click("#steps-list li >> nth=2")
    open_stage(run_page, "attention")
    run_page.select_option("select[name=Layer]", "7")
    expect(run_page).to_have_url(re.compile(r"prompt=The\+quick\+brown\+fox.*step=2&stage=attention&layer=7"))
    url = run_page.url
    page = new_page(browser, live_server, url[len(live_server):])
    try:
        expect(page.locator("#status")).to_contain_text("Done", timeout=120_000)
        assert token_texts(page) == GREEDY
        expect(page.locator(tid("stage-attention"))).to_have_class("active")
        expect(page.locator("#step-label")).to_contain_text("Step 2 of 5")
        expect(page.locator("select[name=Layer]")).to_have_value("7")
        expect(page.locator(tid("prompt"))).to_have_value(PROMPT)
    finally:
        page.context.close()


def test_export_and_import_a_run(run_page, page, tmp_path):
    with run_page.expect_download() as download:
        run_page.click("#export-btn")
    path = tmp_path / "run.json"
    download.value.save_as(path)
    data = json.loads(path.read_text())
    assert [s["emitted"][0]["text"] for s in data["steps"]] == [t.replace("␣", " ") for t in GREEDY]
    page.set_input_files("#import-file", str(path))
    expect(page.locator("#status")).to_contain_text("Imported run")
    assert token_texts(page) == GREEDY
    open_stage(page, "prediction")
    expect(page.locator("#stage-body")).to_contain_text("Most likely next token: ␣with")


def test_html_prompt_is_shown_as_text(page):
    evil = "<img src=x onerror=alert(1)>"
    generate(page, evil, tokens=2)
    assert page.dialogs == []
    assert page.locator("#output-tokens img, #stage-body img, #steps-list img").count() == 0
    prompt_text = "".join(page.locator("#output-tokens .chip.prompt .txt").all_inner_texts())
    assert prompt_text == evil.replace(" ", "␣")
    assert page.errors == []


def test_clicking_another_candidate_continues_from_it(page):
    generate(page, tokens=3)
    page.click("#steps-list li >> nth=0")
    open_stage(page, "sampling")
    page.click(f"{tid('candidate')}:has-text('␣and')")
    expect(page.locator("#status")).to_contain_text("Done", timeout=120_000)
    texts = token_texts(page)
    assert texts[0] == "␣and" and len(texts) == 3
    expect(page.locator("#steps-list li >> nth=0")).to_contain_text("your pick")


def test_each_optimization_changes_the_timing_panel(page, shots):
    timing = page.locator(tid("timing"))
    generate(page, "one two three four. one two three four. one two", tokens=5)
    expect(timing).to_contain_text("KV cache on · fp32")
    kv_on_bytes = timing.locator(".metric", has_text="KV cache now").locator(".v").inner_text()
    assert re.fullmatch(r"\d+\.\d kB", kv_on_bytes), kv_on_bytes             # SI: a whole number of 46,080-byte rows
    assert abs(float(kv_on_bytes[:-3]) * 1000 / 46_080 - round(float(kv_on_bytes[:-3]) * 1000 / 46_080)) < 0.01

    page.uncheck(tid("toggle-kv-cache"))
    generate(page, "one two three four. one two three four. one two", tokens=5)
    expect(timing.locator(tid("timing-label"))).to_contain_text("KV cache off · fp32")
    expect(timing.locator(".metric", has_text="KV cache now").locator(".v")).to_have_text("off (0 B)")
    expect(timing.locator(".legend .traces").first).to_be_visible()
    assert timing.locator(".js-plotly-plot >> nth=0").locator(".legend .traces").count() == 2
    page.check(tid("toggle-kv-cache"))

    page.select_option(tid("select-quantization"), "int8")
    generate(page, "one two three four. one two three four. one two", tokens=5)
    expect(timing.locator(tid("timing-label"))).to_contain_text("KV cache on · int8")
    expect(timing.locator(".metric", has_text="weights (int8)")).to_be_visible()
    page.select_option(tid("select-quantization"), "fp32")

    page.check(tid("toggle-speculative"))
    generate(page, "one two three four. one two three four. one two", tokens=5)
    expect(timing.locator(tid("timing-label"))).to_contain_text("speculative prompt-lookup")
    expect(timing.locator(tid("acceptance"))).to_contain_text("%")
    expect(page.locator("#steps-list")).to_contain_text("drafts ")      # e.g. "drafts 3/3" on a step
    expect(timing.locator(tid("speedup"))).to_contain_text("measured speedup vs #1")   # the kv-on fp32 run
    page.uncheck(tid("toggle-speculative"))
    timing.screenshot(path=shots / "timing-compare.png")

    page.check(tid("toggle-batching"))
    page.fill("#batch-prompts", "The capital of France is\nOnce upon a time")
    generate(page, tokens=3)
    expect(page.locator("#batch-output .col")).to_have_count(2)
    expect(timing.locator(tid("batch-throughput"))).to_contain_text("tokens/s")
    expect(timing.locator(tid("timing-label"))).to_contain_text("batch of 2")
    page.screenshot(path=shots / "batching.png")


def test_a_bad_request_shows_a_readable_error(page):
    page.fill(tid("prompt"), "   ")
    page.click(tid("generate"))
    expect(page.locator("#error")).to_be_visible()
    expect(page.locator("#error")).to_contain_text("prompt is empty; type some text to start from (field: prompt)")
    expect(page.locator(tid("token"))).to_have_count(0)


def test_sampling_with_temperature_shows_the_draw_and_special_tokens(page, shots):
    page.check("#chat")
    page.fill("#temperature", "0.8")
    page.fill("#top_k", "20")
    page.fill("#seed", "7")
    generate(page, "Name a colour.", tokens=2)
    open_stage(page, "tokenization")
    special = page.locator("#stage-body .chip.special")
    assert special.count() >= 4                                   # <|im_start|> and <|im_end|> of two turns
    assert special.first.locator(".txt").inner_text() == "<|im_start|>"
    page.click("#steps-list li >> nth=0")
    open_stage(page, "sampling")
    body = page.locator("#stage-body")
    expect(body).to_contain_text("Sampling with temperature 0.8, top-k 20, no top-p.")
    expect(body.locator("h3", has_text="The draw: u = 0.")).to_be_visible()
    expect(body).to_contain_text("20 kept")
    page.screenshot(path=shots / "stage-sampling-temperature.png")


def shown_step(page):
    return int(page.locator("#step-label").inner_text().split()[1])


def test_pause_holds_the_view_while_tokens_arrive_and_play_replays(page):
    page.fill(tid("prompt"), PROMPT)
    page.fill("#max_new_tokens", "10")
    hold_stream_after_first_step(page)                  # still streaming when Pause is clicked, however fast
    page.click(tid("generate"))
    page.wait_for_selector(tid("token"))
    expect(page.locator("#play")).to_have_text("Pause")  # following the stream
    page.click("#play")
    expect(page.locator("#play")).to_have_text("Play")
    held = shown_step(page)
    release_stream(page)
    expect(page.locator("#status")).to_contain_text("Done", timeout=120_000)
    expect(page.locator(tid("token"))).to_have_count(10)
    assert held < 9 and shown_step(page) == held, "the view should stay where it was paused"
    page.click("#play")                                 # replay: the next step once its motion has played
    expect(page.locator("#step-label")).to_contain_text(f"Step {held + 1} of 9", timeout=10_000)


def test_an_imported_run_unknown_here_can_be_recreated(run_page, page, tmp_path):
    with run_page.expect_download() as download:
        run_page.click("#export-btn")
    data = json.loads(open(download.value.path()).read())
    data["id"] = data["header"]["id"] = "0123456789ab"                 # as if exported from another server
    path = tmp_path / "elsewhere.json"
    path.write_text(json.dumps(data))
    page.set_input_files("#import-file", str(path))
    expect(page.locator("#status")).to_contain_text("Imported run 0123456789ab")
    open_stage(page, "attention")
    expect(page.locator("#stage-body")).to_contain_text("no run '0123456789ab' on this server")
    page.click("#stage-body button:has-text('Re-create this run here')")
    expect(page.locator("#status")).to_contain_text("Done", timeout=120_000)
    assert token_texts(page) == GREEDY
    expect(page.locator(tid("attention-heatmap")).locator(".xtick text")).not_to_have_count(0)
