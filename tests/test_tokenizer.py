"""The default model's tokenizer, built from the GGUF's tokens and merges."""
import pytest


@pytest.fixture(scope="module")
def tok(real_model):
    return real_model.tokenizer


def test_empty_string_has_no_tokens(tok):
    assert tok.encode("") == []
    assert tok.decode([]) == ""


def test_control_tokens_are_single_special_tokens(tok):
    ids = tok.encode("<|im_start|>user\nHi<|im_end|>")
    assert ids[0] == 1 and ids[-1] == 2
    assert tok.is_special(1) and tok.is_special(2)
    assert tok.piece(1) == "<|im_start|>"
    assert not tok.is_special(ids[1])


def test_no_implicit_bos(tok):
    assert tok.encode("Hello")[0] != 1


@pytest.mark.parametrize("text", ["Café naïve — 東京 🙂", "tabs\tand\nnewlines", "  two leading spaces",
                                  "12345 + 67890", "don't stop"])
def test_round_trip(tok, text):
    assert tok.decode(tok.encode(text)) == text


def test_digits_are_split_one_by_one(tok):
    ids = tok.encode("12345")
    assert [tok.piece(i) for i in ids] == ["1", "2", "3", "4", "5"]


def test_pieces_show_leading_space_and_bytes(tok):
    ids = tok.encode("The capital")
    assert [tok.piece(i) for i in ids] == ["The", " capital"]
    # an emoji is split into byte tokens that are not valid UTF-8 on their own
    pieces = [tok.piece(i) for i in tok.encode("🙂")]
    assert any(p.startswith("<0x") for p in pieces)
    assert tok.decode(tok.encode("🙂")) == "🙂"


def test_chat_template_is_chatml(tok):
    text = tok.apply_chat_template("What is 2+2?")
    assert text.endswith("<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n")


def test_end_of_turn_stops_generation(tok):
    assert tok.encode("<|im_end|>")[0] in tok.eos_ids
