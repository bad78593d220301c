"""Texts the page builds from Python facts: the machine it names and the sizes it prints."""
import os

from llmviz import quant


def test_boot_facts_name_this_machine(client):
    facts = client.get("/api/model").get_json()
    assert facts["machine"]["cpus"] == os.cpu_count()
    assert facts["machine"]["description"]


def test_boot_facts_carry_every_format_size_from_the_model(client, real_model):
    sizes = {q["name"]: q["weight_bytes"] for q in client.get("/api/model").get_json()["quantizations"]}
    assert sizes["fp32"] == real_model.nbytes == 538_060_032
    assert sizes["int8"] == quant.model_nbytes(real_model, "int8") == 135_439_104
    assert sizes["int4"] == quant.model_nbytes(real_model, "int4") == 101_000_448   # 5.3x smaller, not 8x


def test_kv_cache_per_token_is_the_formula_on_the_page(client):
    card = client.get("/api/model").get_json()["model"]
    c = card["config"]
    assert card["kv_bytes_per_token"] == 2 * c["n_layers"] * c["n_kv_heads"] * c["d_head"] * 4 == 46_080
    assert 2 * c["n_layers"] * c["n_heads"] * c["d_head"] * 4 == 3 * 46_080     # without grouped-query attention
