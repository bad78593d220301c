"""Run the llmviz web app:  python app.py [--host 127.0.0.1] [--port 5000] [--model PATH]"""
import argparse
import os

# One BLAS thread, as under gunicorn (gunicorn.conf.py says why): with OpenBLAS's default threads
# next to the request and scheduler threads, a class of 30 on 2 busy cores ran at 0.3 tokens/s for
# one stream (docs/production.md). Set before NumPy is imported; the environment can override it.
for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(name, "1")

from llmviz.web import create_app  # noqa: E402  (after the BLAS setting)


def main():
    parser = argparse.ArgumentParser(description="llmviz: watch a real LLM turn a prompt into text")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=5000, help="port (default 5000)")
    parser.add_argument("--model", default=None, help="a .gguf file or Hugging Face directory "
                                                      "(default: SmolLM2-135M-Instruct)")
    args = parser.parse_args()
    app = create_app({"LLMVIZ_MODEL_PATH": args.model, "LLMVIZ_WARMUP": True})
    print(f"llmviz: open http://{args.host}:{args.port}/")
    app.run(host=args.host, port=args.port, debug=False, threaded=True)


if __name__ == "__main__":
    main()
