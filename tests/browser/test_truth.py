"""What the page says about a step matches what the engine computed for it (issue 9, points 2-8).

Four kinds of step are read in a real browser, each from a real run: a plain decode step
(KV cache on), a step with the cache off, a speculative step whose drafts were all accepted
and one where a draft was rejected. Every expectation is computed from the run's own record
(the /api/stream events the page received), never from a remembered output.
"""
import json
import os
import re

import pytest
from playwright.sync_api import expect

from llmviz import quant

from .conftest import new_page

PROMPT = "The quick brown fox"
# Prompt lookup copies what followed the same words earlier: the greedy continuation repeats
# the sequence (all four drafts accepted), then leaves it (the next draft is rejected).
REPEATING = "one two three four five six. one two three four five six. one two three four five six. one"
# Sampled (temperature 1): prompt lookup's drafts are accepted with probability p(draft).
SAMPLED = "one two three four. one two three four. one two"
SAMPLED_SEED = 2


def tid(name):
    return f"[data-testid={name}]"


def stream_run(page, prompt, tokens, *, kv_cache=True, speculative=False, temperature=0, seed=None):
    """Generate through the form; -> the run as the page received it: {"header", "steps"}."""
    page.fill(tid("prompt"), prompt)
    page.fill("#max_new_tokens", str(tokens))
    page.fill("#temperature", str(temperature))
    page.fill("#seed", "" if seed is None else str(seed))
    page.set_checked(tid("toggle-kv-cache"), kv_cache)
    page.set_checked(tid("toggle-speculative"), speculative)
    with page.expect_response("**/api/stream") as response:
        page.click(tid("generate"))
    expect(page.locator("#status")).to_contain_text("Done", timeout=120_000)
    events = {"steps": []}
    for block in response.value.text().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if lines.get("event") == "run":
            events["header"] = json.loads(lines["data"])
        elif lines.get("event") == "step":
            events["steps"].append(json.loads(lines["data"])["step"])
    return events


READY = {"tokenization": ".tokens", "embedding": ".js-plotly-plot", "attention": tid("attention-heatmap"),
         "feedforward": ".js-plotly-plot", "prediction": "table.lens", "sampling": tid("candidate")}


def show(page, step, stage):
    """Open step `step` on stage `stage` and wait until the stage has drawn that step. The
    tokenization stage draws at once and names the step, so it is passed through first."""
    page.click(tid("stage-tokenization"))
    page.click(f"#steps-list li[data-step='{step}']")
    body = page.locator("#stage-body")
    expect(body).to_contain_text("The prompt:" if step == 0 else f"Step {step} feeds")
    page.click(tid(f"stage-{stage}"))
    expect(body).to_have_attribute("data-stage", stage)
    expect(body.locator(READY[stage]).first).to_be_visible()
    return body


def visible(text):
    return text.replace(" ", "␣").replace("\n", "↵").replace("\t", "⇥")


def streamed_page(browser, live_server, *args, **kwargs):
    """A page that has streamed one run (stream_run's arguments); closed after the module."""
    page = new_page(browser, live_server)
    page.run = stream_run(page, *args, **kwargs)
    yield page
    page.context.close()


@pytest.fixture(scope="module")
def plain(browser, live_server):
    yield from streamed_page(browser, live_server, PROMPT, 4)


@pytest.fixture(scope="module")
def cache_off(browser, live_server):
    yield from streamed_page(browser, live_server, PROMPT, 4, kv_cache=False)


@pytest.fixture(scope="module")
def spec_greedy(browser, live_server):
    yield from streamed_page(browser, live_server, REPEATING, 12, speculative=True)


@pytest.fixture(scope="module")
def spec_sampled(browser, live_server):
    yield from streamed_page(browser, live_server, SAMPLED, 12, speculative=True, temperature=1, seed=SAMPLED_SEED)


def spec_step(run, kind):
    """The first speculative step that checked drafts and ended in `kind` ("bonus": every draft
    accepted; "resample": a draft was rejected)."""
    for s in run["steps"]:
        spec = s.get("speculative")
        if spec and spec["draft"] and spec["final_kind"] == kind and (kind == "resample" or spec["accepted"]):
            return s
    raise AssertionError(f"this seeded run has no speculative step ending in {kind}: "
                         f"{[(s.get('speculative') or {}).get('final_kind') for s in run['steps']]}")


# -- point 8: what a step feeds; point 2: the tokenization view outlines every fed token ---------

def test_plain_decode_step_feeds_the_token_chosen_one_step_earlier(plain):
    step = plain.run["steps"][2]
    body = show(plain, 2, "tokenization")
    chosen = plain.run["steps"][1]["emitted"][0]["text"]
    expect(body.locator(".chip.new")).to_have_count(1)
    expect(body.locator(".chip.new .txt")).to_have_text(visible(chosen))
    expect(body).to_contain_text(f"Step 2 feeds 1 token (outlined): {visible(chosen)}, the token chosen in step 1.")
    expect(body).to_contain_text(f"The {step['kv']['reused_rows']} earlier tokens (faded) are not recomputed")
    explain = plain.locator("#stage-explain")
    expect(explain).to_contain_text("With the KV cache on, each later step feeds only the token chosen one step")
    expect(explain).to_contain_text("with it off, a step feeds the whole text again")


def test_cache_off_step_feeds_the_whole_text(cache_off):
    step = cache_off.run["steps"][2]
    n = len(step["input_tokens"])
    assert step["kv"]["reused_rows"] == 0 and n == len(cache_off.run["header"]["prompt_tokens"]) + 2
    body = show(cache_off, 2, "tokenization")
    expect(body.locator(".chip.new")).to_have_count(n)
    expect(body).to_contain_text(f"Step 2 feeds all {n} tokens (outlined): the KV cache is off")


def test_speculative_step_outlines_the_last_token_and_every_draft(spec_greedy):
    step = spec_step(spec_greedy.run, "bonus")
    drafts = step["input_tokens"][1:]
    body = show(spec_greedy, step["index"], "tokenization")
    fed = body.locator(".chip.new .txt")
    expect(fed).to_have_count(1 + len(drafts))
    assert fed.all_inner_texts() == [visible(t["text"]) for t in step["input_tokens"]]
    expect(body).to_contain_text(f"feeds {1 + len(drafts)} tokens (outlined) in one pass")
    expect(body).to_contain_text(f"{len(drafts)} draft tokens proposed by prompt lookup")
    expect(body).not_to_contain_text("KV cache is off")


# -- point 2: attention on a verify pass ---------------------------------------------------------

def test_attention_of_a_plain_decode_step_is_one_query_against_the_cache(plain):
    step = plain.run["steps"][2]
    body = show(plain, 2, "attention")
    expect(body).to_contain_text("Decode step: one new query against the cached keys")
    expect(body).to_contain_text(f"{step['kv']['reused_rows']} key/value rows came from the KV cache")
    key_axis = body.locator("[data-testid=attention-heatmap] .xtitle")
    expect(key_axis).to_have_text("keys (this token and the ones before it)")


def test_attention_with_the_cache_off_says_every_row_was_recomputed(cache_off):
    step = cache_off.run["steps"][2]
    body = show(cache_off, 2, "attention")
    expect(body).to_contain_text(f"The KV cache is off: all {len(step['input_tokens'])} rows were recomputed")


@pytest.mark.parametrize("kind", ["bonus", "resample"])
def test_attention_of_a_verify_pass_is_the_last_token_plus_drafts_against_the_cache(spec_greedy, kind):
    step = spec_step(spec_greedy.run, kind)
    n_drafts = len(step["input_tokens"]) - 1
    body = show(spec_greedy, step["index"], "attention")
    expect(body).to_contain_text(f"Speculative verify pass: {1 + n_drafts} queries against the cached keys")
    expect(body).to_contain_text(f"{step['kv']['reused_rows']} key/value rows came from the KV cache")
    expect(body).to_contain_text(f"the last emitted token and {n_drafts} draft token")
    expect(body).not_to_contain_text("KV cache is off")
    expect(body).not_to_contain_text("recomputed")


# -- point 3: every view names the position it describes -----------------------------------------

@pytest.mark.parametrize("kind", ["bonus", "resample"])
@pytest.mark.parametrize("stage", ["feedforward", "prediction"])
def test_speculative_views_describe_the_position_that_produced_the_token(spec_greedy, kind, stage):
    step = spec_step(spec_greedy.run, kind)
    accepted = step["speculative"]["accepted"]
    position = step["positions"][0] + accepted
    assert step.get("focus_position", position) == position
    after = step["input_tokens"][accepted]["text"]
    body = show(spec_greedy, step["index"], stage)
    expect(body).to_contain_text(f"position {position} (after {visible(after)})")


def test_plain_views_describe_the_last_fed_position(plain):
    step = plain.run["steps"][2]
    position = step["positions"][1] - 1
    body = show(plain, 2, "prediction")
    expect(body).to_contain_text(f"position {position} (after {visible(step['input_tokens'][-1]['text'])})")


# -- point 4: the residual distribution after a rejection ----------------------------------------

def test_sampling_after_a_rejection_shows_the_residual_distribution(spec_sampled):
    step = spec_step(spec_sampled.run, "resample")
    spec = step["speculative"]
    rejected = spec["draft"][spec["accepted"]]
    body = show(spec_sampled, step["index"], "sampling")
    legend = body.locator(".legend .traces").all_text_contents()
    assert any(t.startswith("residual norm(max(0, p − q))") for t in legend), legend
    assert not any("after top-k / top-p" in t for t in legend), legend
    expect(body).to_contain_text(f"The draft token {visible(rejected['text'])} was rejected")
    expect(body).to_contain_text("accepted with probability min(1, p/q)")
    expect(body).to_contain_text("drawn from the residual norm(max(0, p − q))")
    # the residual gives the rejected token no probability at all
    final = {c["id"]: c["p_final"] for c in step["sampling"]["candidates"]}
    assert final.get(rejected["id"], 0) == 0


def test_sampling_after_accepted_drafts_names_the_bonus_token(spec_greedy):
    step = spec_step(spec_greedy.run, "bonus")
    body = show(spec_greedy, step["index"], "sampling")
    n = len(step["input_tokens"]) - 1
    assert step["speculative"]["accepted"] == n
    expect(body).to_contain_text(f"{n} accepted, then the model itself chose")
    expect(body).to_contain_text("the bonus token after the accepted drafts")
    legend = body.locator(".legend .traces").all_text_contents()
    assert not any(t.startswith("residual") for t in legend), legend


def test_plain_sampling_legend(plain):
    body = show(plain, 1, "sampling")
    legend = body.locator(".legend .traces").all_text_contents()
    assert legend == ["model (softmax of logits)", "greedy: all on the top token"], legend


# -- points 5, 6, 7: the optimizations panel -----------------------------------------------------

def test_speculative_text_claims_identical_output_for_greedy_only(plain):
    text = plain.locator("#opt-explain").inner_text()
    assert "exactly what the model alone would produce" not in text
    assert "With greedy decoding (temperature 0) the output is identical" in text
    assert "with sampling it follows the same probability distribution" in text


def test_quantization_sizes_are_the_models_own(plain, real_model):
    text = plain.locator("#opt-explain").inner_text()
    for kind in ("int8", "int4"):
        nbytes = quant.model_nbytes(real_model, kind)
        assert f"{nbytes / 1e6:.1f} MB" in text, (kind, text)
    assert "8× smaller" not in text and "slower" not in text
    fp32 = quant.model_nbytes(real_model, "fp32")
    assert f"{fp32 / quant.model_nbytes(real_model, 'int4'):.1f}×" in text


def test_batching_text_describes_the_engine_and_this_machine(plain):
    text = plain.locator("#opt-explain").inner_text()
    assert "2-core" not in text
    assert "one matrix-vector product per prompt" in text and "up to 4" in text
    cores = os.cpu_count()
    assert re.search(rf"\b{cores} CPU cores?\b", text), text


# -- points 10 and 11 ----------------------------------------------------------------------------

def test_sizes_are_printed_in_si_units(plain, real_model):
    timing = plain.locator(tid("timing"))
    weights = timing.locator(".metric", has_text="weights (fp32)").locator(".v").inner_text()
    assert weights == f"{real_model.nbytes / 1e6:.1f} MB"
    per_token = timing.locator(".metric", has_text="KV cache per token").locator(".v").inner_text()
    assert per_token == f"{real_model.config.kv_bytes_per_token() / 1e3:.1f} kB"


def test_steps_list_says_which_probability_it_shows(plain):
    item = plain.locator("#steps-list li[data-step='1'] .p")
    expect(item).to_have_attribute("title", re.compile("temperature 1"))
    expect(plain.locator(".steps-panel")).to_contain_text("softmax of its logits at temperature 1")


def test_residual_caption_follows_the_data(plain):
    body = show(plain, 2, "feedforward")
    norms = plain.evaluate("() => [...document.querySelectorAll('#stage-body .js-plotly-plot')].pop().data[0].y")
    trend = "grows" if norms[-1] > norms[0] else "shrinks"
    expect(body).to_contain_text(f"its size {trend} from {norms[0]:.1f} after layer 0 to {norms[-1]:.1f}")
    expect(body).not_to_contain_text("so it grows")


def test_drafts_after_a_rejection_are_counted_but_not_called_rejected(spec_greedy):
    step = spec_step(spec_greedy.run, "resample")
    spec, drafts = step["speculative"], step["input_tokens"][1:]
    unchecked = len(drafts) - spec["accepted"] - 1
    assert unchecked > 0, "this run's rejection should come before its last draft"
    item = spec_greedy.locator(f"#steps-list li[data-step='{step['index']}']")
    expect(item).to_contain_text(f"drafts {spec['accepted']}/{len(drafts)}")
    body = show(spec_greedy, step["index"], "sampling")
    expect(body).to_contain_text(f"draft proposed {len(drafts)} tokens")
    assert body.inner_text().count("(not checked)") == unchecked
    expect(body).to_contain_text(f"the {unchecked} after the first rejection are not checked")


def test_the_draw_picture_puts_u_in_the_chosen_slice(browser, live_server):
    """Every sampled step: the chosen token's bar in the draw chart spans u, as the engine walked it."""
    page = new_page(browser, live_server)
    try:
        run = stream_run(page, PROMPT, 6, temperature=1.5, seed=11)
        for step in run["steps"]:
            s = step["sampling"]
            body = show(page, step["index"], "sampling")
            expect(body).to_contain_text(f"The draw: u = {s['u']:.4f}")
            bars = page.evaluate("""() => [...document.querySelectorAll('#stage-body .js-plotly-plot')][1].data
                .map((t) => ({ name: t.name, base: t.base[0], width: t.x[0], line: t.marker.line.width }))""")
            chosen = [b for b in bars if b["line"] == 3]
            assert len(chosen) == 1, bars
            assert chosen[0]["base"] <= s["u"] < chosen[0]["base"] + chosen[0]["width"], (step["index"], s["u"], bars)
    finally:
        page.context.close()
