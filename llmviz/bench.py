"""`python -m llmviz bench`: the four optimizations measured on this machine.

Every figure comes from this process, on the default model (SmolLM2-135M-Instruct,
dequantized to float32). `--quick` runs shorter versions of each measurement; tests
never assert timings.

Measuring on a shared CPU: by default the bench uses the BLAS default threads and the
wall clock, which is what a user on an idle machine sees. When other processes want the
same cores, wall-clock times mostly measure the queue; `--threads 1` then runs BLAS on one
thread and times with the process's CPU clock (time.process_time), which counts only the
time this process computed. The headline decode speed is sustained (tokens / total time);
elsewhere a step can be slowed down but never sped up by others, so speeds use the
*fastest* of many steps (or of repeated runs), with the median next to it, and the load
average is printed.

Sections:
    machine      CPUs, BLAS, load, memory bandwidth (a NumPy dot over >= 512 MB)
    decode       fp32 tokens/s with the KV cache, next to the bandwidth bound
                 (weight bytes read per token / bandwidth)
    kv_cache     tokens/s with the cache on and off at several context lengths
    quantization weight bytes, KL / top-1 / perplexity against fp32 on the shipped text,
                 decode tokens/s with the fused kernels (interleaved runs) and the ratio to
                 fp32, bytes read per token and the bandwidth bound, llama.cpp's figures as an
                 outside reference, and the kernels' compile time vs a cached start
    batching     total tokens/s and per-request latency for batch sizes 1..16
    speculative  acceptance and speedup per draft source on a grounded and a free-form
                 prompt, and the break-even cost of a verify pass
"""
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from .batching import step_together
from .forward import KVCache, forward
from .generate import Generation
from .kernels import KERNELS
from .model import load_model
from .quant import FORMATS, FUSED_MAX_ROWS, LABELS, evaluate, quantize_model
from .speculative import default_exit_layer, truncated_model

TEXT = Path(__file__).parent / "data" / "alice-ch1-2.txt"
PARAGRAPH = ("Alice was beginning to get very tired of sitting by her sister on the bank, and of having "
             "nothing to do: once or twice she had peeped into the book her sister was reading, but it had "
             "no pictures or conversations in it, 'and what is the use of a book,' thought Alice 'without "
             "pictures or conversations?'")
GROUNDED = "Repeat this paragraph exactly, word for word:\n\n" + PARAGRAPH
FREE_FORM = "Write a short story about a robot who learns to paint."


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def median(xs):
    return float(np.median(xs)) if len(xs) else float("nan")


# -- machine ----------------------------------------------------------------------------

def machine_info():
    cpu = platform.processor()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=5).stdout
        cpu = next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")), cpu)
    except (OSError, subprocess.SubprocessError):
        pass
    blas = "unknown"
    try:
        cfg = np.show_config(mode="dicts")
        blas = f'{cfg["Build Dependencies"]["blas"]["name"]} {cfg["Build Dependencies"]["blas"]["version"]}'
    except Exception:  # noqa: BLE001 - only informative
        pass
    return {"cpus": os.cpu_count(), "cpu": cpu, "numpy": np.__version__, "blas": blas,
            "load_average": [round(x, 2) for x in os.getloadavg()]}


def read_rates(product, nbytes, repeats):
    """Bytes/s of `repeats` calls of product(), each reading nbytes."""
    return [nbytes / timed(product) for _ in range(repeats)]


def memory_bandwidth(megabytes=512, repeats=7):
    """Bytes/s of a streaming read over `megabytes`: np.dot of two float32 vectors, and a
    gemv x @ W. Best and median of `repeats`; the faster kernel is the machine's figure."""
    half = np.ones(megabytes * (1 << 20) // 8, np.float32)                 # two halves of the bytes
    other = half.copy()
    dot = read_rates(lambda: np.dot(half, other), 2 * half.nbytes, repeats)
    half = other = None                                                    # free before the gemv's matrix
    W = np.ones((megabytes * (1 << 20) // (4 * 4096), 4096), np.float32)   # [R, 4096]
    x = np.ones(W.shape[0], np.float32)
    gemv = read_rates(lambda: x @ W, W.nbytes, repeats)
    faster = max(dot, gemv, key=max)
    return {"dot_gb_s": round(max(dot) / 1e9, 2), "gemv_gb_s": round(max(gemv) / 1e9, 2),
            "bytes_read": int(W.nbytes), "gb_s": round(max(faster) / 1e9, 2),
            "median_gb_s": round(median(faster) / 1e9, 2)}


CLOCK = {"fn": time.perf_counter, "name": "wall"}


def clock():
    return CLOCK["fn"]()


def timed(fn):
    t = clock()
    fn()
    return clock() - t


def set_blas_threads(n):
    """Set OpenBLAS's thread count through its C API (numpy bundles OpenBLAS). -> True if set."""
    import ctypes
    import glob
    libdir = Path(np.__file__).parent.parent / "numpy.libs"
    for lib in glob.glob(str(libdir / "*openblas*")):
        so = ctypes.CDLL(lib)
        for name in ("scipy_openblas_set_num_threads64_", "openblas_set_num_threads64_",
                     "openblas_set_num_threads"):
            if hasattr(so, name):
                getattr(so, name)(ctypes.c_int(n))
                return True
    return False


def decode_steps(gen):
    """Run the prefill, then time every later step. -> seconds per decode step (by CLOCK)."""
    next(gen)
    times = []
    while not gen.done:
        t = clock()
        next(gen)
        times.append(clock() - t)
    return times


def best_median_ms(times):
    return 1000 * min(times), 1000 * median(times)


# -- decode speed -----------------------------------------------------------------------

def decode_speed(model, new_tokens, prompt="The history of the printing press"):
    """Sustained decode speed (tokens / total decode time), untraced and traced."""
    out = {}
    for traced in (False, True):
        times = decode_steps(Generation(model, prompt, max_new_tokens=new_tokens + 1, stop_at_eos=False,
                                        trace=traced))
        best, med = best_median_ms(times)
        key = "traced_" if traced else ""
        out.update({key + "tokens": len(times), key + "tokens_per_second": round(len(times) / sum(times), 2),
                    key + "best_step_ms": round(best, 2), key + "median_step_ms": round(med, 2)})
    out["tracing_cost"] = round(1 - out["traced_tokens_per_second"] / out["tokens_per_second"], 3)
    return out


def bytes_per_token(model, context):
    """Weights read once per decode step plus the K/V rows attended over."""
    return model.nbytes + context * model.config.kv_bytes_per_token()


def kv_cache_curve(model, text_ids, contexts, steps):
    """Median decode-step time with the cache on and off, at several context lengths."""
    rows = []
    for n in contexts:
        row = {"context": n, "cache_bytes": n * model.config.kv_bytes_per_token()}
        for on in (True, False):
            new = (4 * steps if on else steps) + 1                     # cached steps are cheap: take more
            ms, _ = best_median_ms(decode_steps(Generation(model, None, prompt_ids=text_ids[:n], max_new_tokens=new,
                                                           kv_cache=on, stop_at_eos=False)))
            row["on_ms" if on else "off_ms"] = round(ms, 2)
            row["on_tokens_per_second" if on else "off_tokens_per_second"] = round(1000 / ms, 2)
        row["speedup"] = round(row["off_ms"] / row["on_ms"], 1)
        rows.append(row)
        log(f"  context {n:4d}: cache on {row['on_ms']:8.1f} ms/token, off {row['off_ms']:8.1f} ms/token "
            f"({row['speedup']}x), cache {row['cache_bytes'] / 1e6:.2f} MB")
    return rows


# -- quantization -----------------------------------------------------------------------

# An outside reference, not measured by this bench: llama.cpp (llama-cpp-python 0.3.x, built
# on this machine, 2 threads) decoding the same SmolLM2 file converted to F32, Q8_0 and Q4_1.
LLAMA_CPP = {"tokens_per_second": {"fp32": 43.6, "int8": 165.0, "int4": 239.0},
             "formats": {"fp32": "F32", "int8": "Q8_0", "int4": "Q4_1"},
             "source": "llama.cpp via llama-cpp-python 0.3.x on this machine, 2 threads (issue 10)"}


def with_float_embedding(qmodel, model):
    """qmodel with the (un)embedding taken back from the fp32 model: separates the error of
    the layers from that of the embedding (which the file stores as Q8_0, not Q4_1)."""
    w = {**qmodel.weights, "tok_emb": model.weights["tok_emb"], "lm_head": model.weights["lm_head"]}
    return replace(qmodel, weights=w)


def interleaved_decode(models, new_tokens, repeats, prompt="The history of the printing press"):
    """Sustained decode speed (tokens / total decode time, untraced) of each model, the runs
    interleaved (fp32, int8, int4, fp32, ...) so that a busy moment hits all formats alike.
    -> {name: {"tokens_per_second": best of the repeats, "median_tokens_per_second", ...}}"""
    runs = {k: [] for k in models}
    for _ in range(repeats):
        for kind, m in models.items():
            times = decode_steps(Generation(m, prompt, max_new_tokens=new_tokens + 1, stop_at_eos=False))
            runs[kind].append(len(times) / sum(times))
    return {k: {"tokens": new_tokens, "repeats": repeats, "tokens_per_second": round(max(v), 2),
                "median_tokens_per_second": round(median(v), 2)} for k, v in runs.items()}


def quantization_table(model, text_ids, eval_tokens, window, decode_tokens, repeats, bw):
    t = time.perf_counter()
    models = {"fp32": model, **{k: quantize_model(model, k, log=log) for k in FORMATS if k != "fp32"}}
    log(f"  quantized to {', '.join(list(FORMATS)[1:])} in {time.perf_counter() - t:.1f} s (kernels compiled or loaded "
        "from the cache included)")
    t = time.perf_counter()
    compared = {k: m for k, m in models.items() if k != "fp32"}
    compared["int4, float32 embedding"] = with_float_embedding(models["int4"], model)
    acc = evaluate(model, compared, text_ids[: eval_tokens + 1], window)
    log(f"  accuracy over {acc['ref']['tokens']} tokens in windows of {window}: "
        f"{time.perf_counter() - t:.0f} s")
    speed = interleaved_decode(models, decode_tokens, repeats)
    fp32_speed = speed["fp32"]["tokens_per_second"]
    rows = []
    for kind, m in models.items():
        read = bytes_per_token(m, 16)
        a = acc.get(kind, {"mean_kl": 0.0, "top1_agreement": 1.0, "perplexity": acc["ref"]["perplexity"]})
        row = {"format": kind, "label": LABELS[kind], "weight_bytes": m.nbytes,
               "bits_per_weight": round(8 * m.nbytes / n_params(model), 2),
               "mean_kl": round(a["mean_kl"], 5), "top1_agreement": round(a["top1_agreement"], 4),
               "perplexity": round(a["perplexity"], 3), **speed[kind],
               "speedup_vs_fp32": round(speed[kind]["tokens_per_second"] / fp32_speed, 2),
               "bytes_read_per_token": read, "bandwidth_bound_tokens_per_second": round(bw * 1e9 / read, 1)}
        row["fraction_of_bound"] = round(row["tokens_per_second"] / row["bandwidth_bound_tokens_per_second"], 3)
        rows.append(row)
        log(f"  {kind:8s} {row['bits_per_weight']:5.2f} bits/weight {row['weight_bytes'] / 1e6:6.1f} MB  "
            f"KL {row['mean_kl']:.4f}  top-1 {row['top1_agreement']:.3f}  ppl {row['perplexity']:7.3f}  "
            f"{row['tokens_per_second']:6.1f} tok/s = {row['speedup_vs_fp32']:.2f}x fp32 "
            f"(bound {row['bandwidth_bound_tokens_per_second']:.0f} tok/s, {100 * row['fraction_of_bound']:.0f}%)")
    emb = {**acc["int4, float32 embedding"]}
    emb["mean_kl"] = max(0.0, emb["mean_kl"])          # a KL of identical logits comes out as +-1e-8
    log(f"  int4 layers with the float32 embedding: KL {emb['mean_kl']:.5f}, top-1 {emb['top1_agreement']:.3f}, "
        f"ppl {emb['perplexity']:.3f}: the layers are Q4_1 in the file and int4 reproduces them; the rest of "
        "int4's error is the embedding's (Q8_0 in the file)")
    ref = LLAMA_CPP["tokens_per_second"]
    log(f"  outside reference, {LLAMA_CPP['source']}: "
        + ", ".join(f"{LLAMA_CPP['formats'][k]} {v} tok/s ({v / ref['fp32']:.1f}x)" for k, v in ref.items()))
    return {"eval_tokens": acc["ref"]["tokens"], "window": window, "formats": rows,
            "int4_float32_embedding": {k: round(v, 5) for k, v in emb.items()},
            "fused_max_rows": FUSED_MAX_ROWS, "llama_cpp_reference": LLAMA_CPP}


def kernel_compile_times():
    """Seconds for a fresh process to get every fused kernel ready: with an empty numba cache
    (the first start on a machine compiles) and again with the cache that run wrote (every
    later start). Runs in subprocesses with their own cache folder; the real cache is untouched."""
    code = ("import time; t = time.perf_counter(); from llmviz import kernels; "
            "[kernels.warm_up(k, log=lambda *a: None) for k in kernels.KERNELS]; print(time.perf_counter() - t)")
    root = Path(__file__).parent.parent
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache, "PYTHONPATH": str(root)}
        runs = [float(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                     check=True).stdout) for _ in range(2)]
    return {"first_compile_s": round(runs[0], 2), "cached_load_s": round(runs[1], 2), "kernels": list(KERNELS)}


def n_params(model):
    """Weights in the float32 model (tied embedding once)."""
    return model.nbytes // 4


# -- batching ---------------------------------------------------------------------------

BATCH_PROMPTS = ["The capital of France is", "Once upon a time", "The best way to learn", "In 1969,",
                 "My favourite food is", "The ocean is", "Python is a language", "Dear diary,"]


def batching_table(model, sizes, new_tokens):
    rows = []
    base = None
    for B in sizes:
        prompts = [BATCH_PROMPTS[i % len(BATCH_PROMPTS)] + " " * (i // len(BATCH_PROMPTS)) for i in range(B)]
        gens = [Generation(model, p, max_new_tokens=new_tokens, stop_at_eos=False) for p in prompts]
        t0 = clock()
        for g in gens:                                                   # prefills, one by one
            next(g)
        prefill = clock() - t0
        steps = []
        while not gens[0].done:                                          # the batched decode steps
            steps.append(timed(lambda gens=gens: step_together(gens)))
        step_ms, med_ms = best_median_ms(steps)
        decode_tps = B * 1000 / step_ms
        base = base or decode_tps
        row = {"batch": B, "decode_tokens_per_second": round(decode_tps, 2), "step_ms": round(step_ms, 1),
               "median_step_ms": round(med_ms, 1),
               "total_tokens_per_second": round(B * new_tokens / (prefill + sum(steps)), 2),
               "request_latency_s": round(prefill + sum(steps), 2),     # every row ends at the last step
               "speedup_vs_batch_1": round(decode_tps / base, 2)}
        rows.append(row)
        log(f"  batch {B:2d}: {row['decode_tokens_per_second']:7.1f} decode tok/s ({row['speedup_vs_batch_1']}x), "
            f"step {row['step_ms']:.0f} ms, request latency {row['request_latency_s']} s")
    return rows


# -- speculative decoding ---------------------------------------------------------------

def verify_cost(model, context, gammas, repeats=3):
    """Time of one forward over γ+1 new tokens (best of `repeats`), relative to one decode step (γ = 0)."""
    ids = np.arange(100, 100 + context)
    times = {}
    for g in [0] + list(gammas):
        ts = []
        for _ in range(repeats):
            cache = KVCache(model.config, context + g + 1)
            forward(model, ids[None], [cache])
            new = np.arange(g + 1)[None] + 7                             # [1, γ+1]
            ts.append(timed(lambda new=new, cache=cache: forward(model, new, [cache], all_logits=True)))
        times[g] = min(ts)
    one = times[0]
    return [{"gamma": g, "verify_ms": round(times[g] * 1000, 2), "cost_vs_decode": round(times[g] / one, 2),
             # a verify pass emits accepted + 1 tokens; it pays off when that beats its cost in decode steps
             "accepted_needed_to_break_even": round(max(0.0, times[g] / one - 1), 2)}
            for g in gammas]




def speculative_table(model, new_tokens, gamma, repeats):
    """Plain and speculative runs of the same prompt, interleaved and repeated; each keeps its
    fastest repeat (the least disturbed by other processes on a shared CPU)."""
    tok = model.tokenizer
    draft_layers = 8
    sources = {"prompt-lookup": ("prompt-lookup", gamma), "prompt-lookup γ=8": ("prompt-lookup", 8),
               "early-exit": ("early-exit", gamma),
               f"draft-model (first {draft_layers} layers)": (truncated_model(model, draft_layers), gamma)}
    rows = []
    for pname, text in (("grounded", GROUNDED), ("free-form", FREE_FORM)):
        prompt = tok.apply_chat_template(text)
        best = {}
        for _ in range(repeats):
            for sname, (spec, g_draft) in [("plain", (None, gamma))] + list(sources.items()):
                g = Generation(model, prompt, max_new_tokens=new_tokens, stop_at_eos=False, speculative=spec,
                               num_draft_tokens=g_draft)
                seconds = sum(decode_steps(g))
                if sname not in best or seconds < best[sname][0]:
                    best[sname] = (seconds, g.result())
        plain_s, plain = best.pop("plain")
        n = len(plain.token_ids) - 1
        for sname, (spec_s, r) in best.items():
            st = r.stats
            row = {"prompt": pname, "source": sname, "num_draft_tokens": r.stats["num_draft_tokens"],
                   "identical_to_plain": r.token_ids == plain.token_ids,
                   "acceptance_rate": st["acceptance_rate"], "mean_acceptance_length": st["mean_acceptance_length"],
                   "per_position_acceptance": st["per_position_acceptance"],
                   "plain_tokens_per_second": round(n / plain_s, 2), "tokens_per_second": round(n / spec_s, 2),
                   "speedup": round(plain_s / spec_s, 2), "draft_ms": r.timings["stage_ms"]["draft"]}
            rows.append(row)
            log(f"  {pname:9s} {sname:28s} accept {row['acceptance_rate']:.2f}  mean len "
                f"{row['mean_acceptance_length']:.2f}  {row['tokens_per_second']:6.2f} vs "
                f"{row['plain_tokens_per_second']:6.2f} tok/s  speedup {row['speedup']:.2f}x  "
                f"identical {row['identical_to_plain']}")
    return {"num_draft_tokens": gamma, "new_tokens": new_tokens, "repeats": repeats,
            "early_exit_layers": default_exit_layer(model.config.n_layers),
            "draft_model_layers": draft_layers, "runs": rows}


# -- all ---------------------------------------------------------------------------------

def run(quick=False, threads=0):
    t0 = time.perf_counter()
    if threads:
        import numba
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))   # the fused kernels' threads
    if threads and set_blas_threads(threads):
        CLOCK.update(fn=time.process_time if threads == 1 else time.perf_counter,
                     name="process CPU time" if threads == 1 else "wall")
    model = load_model(log=log)
    text_ids = model.tokenizer.encode(TEXT.read_text())
    out = {"model": {"name": model.name, "source_format": "GGUF Q4_1 (4-bit), dequantized to float32",
                     "weight_bytes_fp32": model.nbytes}, "quick": quick}
    log("machine")
    out["machine"] = {**machine_info(), "blas_threads": threads or "default", "clock": CLOCK["name"]}
    log(f"  {out['machine']}")
    bw = memory_bandwidth()
    out["machine"]["bandwidth"] = bw
    log(f"  memory bandwidth {bw['gb_s']} GB/s (dot {bw['dot_gb_s']}, gemv {bw['gemv_gb_s']})")

    log("decode (fp32, KV cache on)")
    d = decode_speed(model, 32 if quick else 128)
    read = bytes_per_token(model, 16)
    bound = bw["gb_s"] * 1e9 / read                       # best bandwidth seen
    typical_bound = bw["median_gb_s"] * 1e9 / read        # median bandwidth
    d.update(bytes_read_per_token=read, bandwidth_bound_tokens_per_second=round(bound, 1),
             median_bandwidth_bound_tokens_per_second=round(typical_bound, 1),
             # like for like: the median decode step against the median bandwidth, the fastest
             # against the fastest; sustained (total time, jitter included) against the best
             fraction_of_bound=round(1000 / d["median_step_ms"] / typical_bound, 3),
             fraction_of_bound_best=round(1000 / d["best_step_ms"] / bound, 3),
             fraction_of_bound_sustained=round(d["tokens_per_second"] / bound, 3))
    out["decode"] = d
    log(f"  {d['tokens_per_second']} tok/s sustained over {d['tokens']} tokens "
        f"(median step {d['median_step_ms']} ms, fastest {d['best_step_ms']} ms); "
        f"{read / 1e6:.0f} MB read per token")
    log(f"  bound at the median bandwidth {bw['median_gb_s']} GB/s: {typical_bound:.1f} tok/s -> median step "
        f"reaches {100 * d['fraction_of_bound']:.0f}%; at the best {bw['gb_s']} GB/s: {bound:.1f} tok/s -> fastest "
        f"step {100 * d['fraction_of_bound_best']:.0f}%, sustained {100 * d['fraction_of_bound_sustained']:.0f}%")
    log(f"  traced: {d['traced_tokens_per_second']} tok/s sustained (tracing costs {100 * d['tracing_cost']:.0f}%)")

    log("KV cache on/off")
    out["kv_cache"] = {"bytes_per_token": model.config.kv_bytes_per_token(),
                       "contexts": kv_cache_curve(model, text_ids, [16, 64] if quick else [16, 64, 256, 512],
                                                  2 if quick else 4)}

    log("quantization: fused kernels (llmviz/kernels.py)")
    out["quantization"] = quantization_table(model, text_ids, 256 if quick else 2048, 128 if quick else 512,
                                             16 if quick else 64, 1 if quick else 3, bw["gb_s"])
    speedup = {r["format"]: r["speedup_vs_fp32"] for r in out["quantization"]["formats"]}
    log(f"  issue 10's targets in this run: int8 {speedup['int8']}x fp32 (>= 2x, goal 3x), int4 {speedup['int4']}x "
        f"(>= 2x, goal 4x), fp32 decode at {100 * d['fraction_of_bound']:.0f}% of the bandwidth bound (median "
        f"step, >= 70%), {100 * d['fraction_of_bound_sustained']:.0f}% sustained")
    out["quantization"]["compile"] = c = kernel_compile_times()
    log(f"  a fresh process readies the {len(c['kernels'])} kernels in {c['first_compile_s']} s with an empty "
        f"numba cache (first start on a machine), {c['cached_load_s']} s from the cache (every later start)")

    log("batching")
    out["batching"] = batching_table(model, [1, 2, 4] if quick else [1, 2, 4, 8, 16], 6 if quick else 16)

    log("speculative decoding")
    gamma = 4
    out["speculative"] = speculative_table(model, 24 if quick else 48, gamma, 1 if quick else 3)
    out["speculative"]["break_even"] = verify_cost(model, 128, [1, 2, 4, 8], repeats=3 if quick else 7)
    for b in out["speculative"]["break_even"]:
        log(f"  verify γ={b['gamma']}: {b['cost_vs_decode']}x a decode step -> needs "
            f"{b['accepted_needed_to_break_even']} accepted tokens per pass (plus draft cost)")
    out["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    out["bench_seconds"] = round(time.perf_counter() - t0, 1)
    return out


def main(json_out=False, quick=False, threads=0):
    result = run(quick, threads)
    if json_out:
        print(json.dumps(result, indent=1))
    return result
