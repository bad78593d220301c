"""GET /api/runs/<id>/steps/<s>/overview: one step of the whole pipeline, on the real model.

Every number in it must be the one the stage endpoints give (logit lens, feed-forward,
attention) or the step summary says (KV rows, drafts, emitted tokens), so the picture and
the detail views can never disagree.
"""
import time

import numpy as np
import pytest

from llmviz.trace import LENS_TOP

PROMPT = "The quick brown fox"
REPEAT = "one two three four five, one two three four five, one two three"   # prompt lookup drafts here


def run(client, **body):
    r = client.post("/api/generate", json={"prompt": PROMPT, "max_new_tokens": 4, "seed": 0, **body})
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def overview(client, run_id, step, layer=0):
    t0 = time.perf_counter()
    r = client.get(f"/api/runs/{run_id}/steps/{step}/overview?layer={layer}")
    ms = (time.perf_counter() - t0) * 1000
    assert r.status_code == 200, r.get_json()
    return r.get_json(), ms


@pytest.fixture(scope="module")
def plain(app):
    return run(app.test_client())


def test_lens_norms_and_activity_are_the_stage_endpoints_numbers(client, plain):
    rid = plain["id"]
    for s in range(len(plain["steps"])):
        ov, ms = overview(client, rid, s)
        print(f"overview of step {s}: {ms:.1f} ms over HTTP, {ov['compute_ms']} ms to compute")
        lens = client.get(f"/api/runs/{rid}/steps/{s}/logit-lens").get_json()["layers"]
        assert len(lens[0]) == LENS_TOP
        assert [layer["lens"] for layer in ov["layers"]] == [cands[0] for cands in lens]
        for layer in (0, 17, 29):
            ffn = client.get(f"/api/runs/{rid}/steps/{s}/feedforward/{layer}").get_json()
            assert ov["layers"][layer]["ffn_mean_abs"] == ffn["mean_abs"]
            assert [x["resid_norm"] for x in ov["layers"]] == ffn["residual_norms"]
    # the last block's lens is the model's own prediction
    assert ov["layers"][-1]["lens"]["id"] == ov["top"][0]["id"] == plain["steps"][-1]["top"][0]["id"]


def test_attention_arcs_are_the_focus_querys_row_averaged_over_heads(client, plain):
    rid = plain["id"]
    ov, _ = overview(client, rid, 0, layer=5)
    att = client.get(f"/api/runs/{rid}/steps/0/attention/5").get_json()
    probs = np.asarray(att["probs"])                                    # [H, T, S]
    assert ov["attention"]["layer"] == 5 and ov["attention"]["query_position"] == 3   # "fox", the last prompt token
    np.testing.assert_allclose(ov["attention"]["weights"], probs[:, -1].mean(axis=0), atol=1e-4)
    assert ov["attention"]["keys"] == plain["prompt_tokens"]
    assert abs(sum(ov["attention"]["weights"]) - 1) < 1e-3


def test_kv_cells_with_the_cache_on_and_off(client, plain):
    steps = plain["steps"]
    first, _ = overview(client, plain["id"], 0)
    assert first["kv"] == {"on": True, "held": 4, "reused": 0, "computed": 4, "discarded": 0,
                           "bytes": steps[0]["kv"]["cache_bytes"]}
    later, _ = overview(client, plain["id"], 2)
    assert (later["kv"]["held"], later["kv"]["reused"], later["kv"]["computed"]) == (6, 5, 1)
    off = run(client, kv_cache=False)
    ov, _ = overview(client, off["id"], 2)
    assert (ov["kv"]["on"], ov["kv"]["held"], ov["kv"]["reused"], ov["kv"]["computed"]) == (False, 6, 0, 6)
    assert [t["text"] for t in ov["emitted"]] == [t["text"] for t in plain["steps"][2]["emitted"]]


def test_speculative_step_shows_its_drafts_and_drops_the_rejected_rows(client):
    spec = run(client, prompt=REPEAT, max_new_tokens=8, speculative="prompt-lookup", num_draft_tokens=4)
    drafting = [s for s in spec["steps"] if s.get("speculative") and s["speculative"]["draft"]]
    assert drafting, "prompt lookup should draft on a repetitive prompt"
    for step in drafting:
        ov, _ = overview(client, spec["id"], step["index"])
        sp = step["speculative"]
        # verification stops at the first rejection: later drafts are dropped unchecked
        assert [d["id"] for d in ov["drafts"]] == sp["draft_tokens"]
        assert [d["accepted"] for d in ov["drafts"]] == [i < sp["accepted"] for i in range(len(sp["draft_tokens"]))]
        assert [d["accepted"] for d in ov["drafts"][:len(sp["draft"])]] == [d["accepted"] for d in sp["draft"]]
        start, end = step["positions"]
        assert ov["kv"]["discarded"] == len(sp["draft_tokens"]) - sp["accepted"]
        assert ov["kv"]["held"] == end - ov["kv"]["discarded"] == start + 1 + sp["accepted"]
        assert ov["emitted"] == step["emitted"]
        # the keys the arcs point at include the draft tokens checked in this pass
        assert [k["id"] for k in ov["attention"]["keys"][start + 1:]] == sp["draft_tokens"]
    rejected = [s for s in drafting if s["speculative"]["accepted"] < len(s["speculative"]["draft_tokens"])]
    assert rejected, "a draft is rejected on this prompt"


def test_block_weights_add_up_to_the_models_bytes(app, client, real_model):
    ov, _ = overview(client, run(client, max_new_tokens=1)["id"], 0)
    assert {x["bits_per_weight"] for x in ov["layers"]} == {32.0}
    other = sum(int(w.nbytes) for name, w in real_model.weights.items()
                if not name.startswith("layers.") and name not in ("tok_emb", "lm_head"))
    total = sum(x["weight_bytes"] for x in ov["layers"]) + ov["unembedding"]["bytes"] + other
    assert total == real_model.nbytes


def test_int8_blocks_show_about_8_bits_per_weight(client):
    q = run(client, max_new_tokens=1, quantization="int8")
    ov, _ = overview(client, q["id"], 0)
    bits = {x["bits_per_weight"] for x in ov["layers"]}
    assert len(bits) == 1 and 8.0 < bits.pop() < 8.2              # int8 codes + a float32 scale per column
    assert ov["model"]["quantization"] == "int8"
    assert ov["layers"][0]["weight_bytes"] < 14_160_384 / 3.5      # the fp32 block is 13.5 MB


def test_bad_step_or_layer_is_a_404_naming_the_field(client, plain):
    r = client.get(f"/api/runs/{plain['id']}/steps/9/overview")
    assert r.status_code == 404
    assert r.get_json()["error"] == {"status": 404, "message": "step 9 does not exist (this run has 4 steps)",
                                     "field": "step"}
    r = client.get(f"/api/runs/{plain['id']}/steps/0/overview?layer=30")
    assert r.status_code == 404 and r.get_json()["error"]["field"] == "layer"
    assert client.get("/api/runs/nope/steps/0/overview").status_code == 404


def test_another_worker_draws_the_same_overview_from_redis(make_app, redis_server):
    """With the Redis run store a step's overview may be asked of any worker: all agree."""
    first, second = (make_app(LLMVIZ_REDIS_URL=redis_server.url).test_client() for _ in range(2))
    made = run(first, max_new_tokens=3)
    for s in range(3):
        here, _ = overview(first, made["id"], s, layer=4)
        there, _ = overview(second, made["id"], s, layer=4)
        here.pop("compute_ms"), there.pop("compute_ms")
        assert there == here
