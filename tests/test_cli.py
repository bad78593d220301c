"""`python -m llmviz`: the commands the Makefile and a reader type."""
import json
import subprocess
import sys

import llmviz


def run(*args):
    return subprocess.run([sys.executable, "-m", "llmviz", *args], capture_output=True, text=True, timeout=300)


def test_info_prints_the_model_card():
    out = run("info")
    assert out.returncode == 0, out.stderr
    assert "SmolLM2-135M-Instruct" in out.stdout and "30 layers" in out.stdout and "46080 bytes per token" in out.stdout


def test_generate_json_matches_the_library(real_model):
    out = run("generate", "The capital of France is", "--max-new-tokens", "3", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["token_ids"] == llmviz.generate(real_model, "The capital of France is", max_new_tokens=3).token_ids


def test_generate_reports_a_bad_option_cleanly():
    out = run("generate", "Hi", "--max-new-tokens", "0", "--speculative", "prompt-lookup", "--no-kv-cache")
    assert out.returncode == 2 and "error: speculative decoding needs kv_cache=True" in out.stderr
