"""KV cache on/off: same tokens, and a trace that says which K/V rows were reused."""
import llmviz

PROMPT = "The quick brown fox"


def test_cache_on_and_off_give_identical_greedy_tokens(real_model):
    on = llmviz.generate(real_model, PROMPT, max_new_tokens=10, kv_cache=True)
    off = llmviz.generate(real_model, PROMPT, max_new_tokens=10, kv_cache=False)
    assert on.token_ids == off.token_ids and len(on.token_ids) == 10


def test_trace_marks_reused_and_computed_rows_with_cache(real_model):
    r = llmviz.generate(real_model, PROMPT, max_new_tokens=4, kv_cache=True, trace=True)
    n = len(r.prompt_ids)
    per_token = real_model.config.kv_bytes_per_token()
    assert per_token == 2 * 30 * 3 * 64 * 4
    kvs = [s["kv"] for s in r.trace.summary()["steps"]]
    assert kvs[0] == {"reused_rows": 0, "computed_rows": n, "cache_bytes": n * per_token}
    for i, kv in enumerate(kvs[1:], start=1):
        assert kv == {"reused_rows": n + i - 1, "computed_rows": 1, "cache_bytes": (n + i) * per_token}
    att = r.trace.attention(2, 0)
    assert att["cached_keys"] == n + 1 and len(att["key_tokens"]) == n + 2


def test_trace_without_cache_recomputes_every_row(real_model):
    r = llmviz.generate(real_model, PROMPT, max_new_tokens=3, kv_cache=False, trace=True)
    n = len(r.prompt_ids)
    kvs = [s["kv"] for s in r.trace.summary()["steps"]]
    assert kvs == [{"reused_rows": 0, "computed_rows": n + i, "cache_bytes": 0} for i in range(3)]
    assert r.trace.summary()["settings"]["kv_cache"] is False
