"""Command line: `python -m llmviz {info, generate, bench}`.

    python -m llmviz info                         load the default model (download on first use), print its card
    python -m llmviz generate "Once upon a time" --max-new-tokens 20 [--model PATH] [--json]
    python -m llmviz bench [--json] [--quick]     measure the four optimizations (llmviz/bench.py)
"""
import argparse
import json
import sys


def cmd_info(args):
    from .model import load_model, model_card
    m = load_model(args.model, quantization=args.quantization, log=lambda msg: print(msg, file=sys.stderr))
    c = m.config
    card = {**model_card(m), "source": m.source, "load_seconds": m.info.get("load_seconds")}
    if args.json:
        print(json.dumps(card, indent=1))
        return
    print(f"{m.name} ({c.arch}), {m.nbytes / 1e6:.0f} MB of {m.quantization} weights from {m.source}")
    print(f"  {c.n_layers} layers, d_model {c.d_model}, {c.n_heads} heads / {c.n_kv_heads} kv heads, "
          f"d_ff {c.d_ff}, vocab {c.vocab_size}, context {c.context_length}")
    print(f"  KV cache: {c.kv_bytes_per_token()} bytes per token; loaded in {card['load_seconds']} s")


def cmd_generate(args):
    from .generate import generate
    from .model import load_model
    m = load_model(args.model, quantization=args.quantization, log=lambda msg: print(msg, file=sys.stderr))
    prompt = m.tokenizer.apply_chat_template(args.prompt) if args.chat else args.prompt
    spec = args.speculative
    r = generate(m, prompt, max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
                 top_p=args.top_p, seed=args.seed, kv_cache=not args.no_kv_cache, speculative=spec,
                 num_draft_tokens=args.num_draft_tokens)
    if args.json:
        print(json.dumps({"text": r.text, "prompt_ids": r.prompt_ids, "token_ids": r.token_ids,
                          "timings": r.timings, "stats": r.stats}, indent=1))
    else:
        print(r.text)
        tps = r.timings["decode_tokens_per_second"]
        print(f"[{len(r.token_ids)} tokens, {tps} tokens/s decode"
              + (f", acceptance {r.stats['acceptance_rate']}" if r.stats else "") + "]", file=sys.stderr)


def cmd_bench(args):
    from . import bench
    bench.main(json_out=args.json, quick=args.quick, threads=args.threads)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m llmviz", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("info", help="load the default model and print a short model card")
    p.add_argument("--model", default=None, help="a .gguf file or a Hugging Face directory")
    p.add_argument("--quantization", default="fp32", choices=["fp32", "int8", "int8-g32", "int4"])
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_info)

    p = sub.add_parser("generate", help="generate text from a prompt")
    p.add_argument("prompt")
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--model", default=None, help="a .gguf file or a Hugging Face directory")
    p.add_argument("--quantization", default="fp32", choices=["fp32", "int8", "int8-g32", "int4"])
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--chat", action="store_true", help="wrap the prompt in the model's chat template")
    p.add_argument("--no-kv-cache", action="store_true")
    p.add_argument("--speculative", choices=["prompt-lookup", "early-exit"], default=None)
    p.add_argument("--num-draft-tokens", type=int, default=4)
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_generate)

    p = sub.add_parser("bench", help="measure KV cache, quantization, batching and speculative decoding")
    p.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    p.add_argument("--quick", action="store_true", help="shorter runs of every measurement")
    p.add_argument("--threads", type=int, default=0,
                   help="BLAS threads; 0 (default) keeps the BLAS default and times by the wall clock, "
                        "what a user sees; 1 times by CPU clock, more robust on a busy shared machine")
    p.set_defaults(fn=cmd_bench)

    args = ap.parse_args(argv)
    try:
        args.fn(args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
