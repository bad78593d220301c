"""POST /api/batch: several prompts generated together (llmviz.generate_batch).

Each prompt becomes an ordinary run in the store, so the page can open any of them
in the six stages; the response adds what batching is about: the wall time of the
whole batch and the total tokens per second.
"""
import time

import llmviz

from .runs import Run


def run_batch(model, settings: dict, store) -> dict:
    prompts = settings["prompts"]
    texts = [model.tokenizer.apply_chat_template(p) if settings["chat"] else p for p in prompts]
    extra = ({"speculative": settings["speculative"], "num_draft_tokens": settings["num_draft_tokens"]}
             if settings["speculative"] else {})
    t0 = time.perf_counter()
    results = llmviz.generate_batch(model, texts, max_new_tokens=settings["max_new_tokens"],
                                    temperature=settings["temperature"], top_k=settings["top_k"],
                                    top_p=settings["top_p"], seed=settings["seed"], trace=True,
                                    kv_cache=settings["kv_cache"], **extra)
    wall = time.perf_counter() - t0
    runs = []
    for prompt, text, result in zip(prompts, texts, results):
        request = {**settings, "prompt": prompt, "prompt_text": text, "seed": result.trace.settings["seed"],
                   "batch_size": len(prompts)}
        run = store.add(Run(result.trace, request, model))
        for step in result.trace.steps:
            run.add_step(step)
            store.step_added(run, step)
        run.finish(result)
        store.finished(run)
        runs.append(run)
    tokens = sum(len(r.token_ids) for r in results)
    return {"batch": {"size": len(prompts), "wall_ms": round(wall * 1000, 3), "tokens": tokens,
                      "tokens_per_second": round(tokens / wall, 2) if wall > 0 else None},
            "runs": [r.to_json() for r in runs]}
