"""The page's JavaScript keeps its structure (issue 12): selectors defined once and matching the
HTML, one view contract, lines of at most 120 characters, and no fact the server states typed again.
These read the source and the served page; no browser is needed."""
import re
from pathlib import Path

import pytest

JS = Path(__file__).resolve().parents[2] / "static" / "js"
MODULES = sorted(JS.rglob("*.js"))
STAGE_VIEWS = ["tokenization", "embedding", "attention", "feedforward", "prediction", "sampling"]


def source(path):
    return path.read_text(encoding="utf-8")


def selectors():
    """SEL's ids, as written in selectors.js."""
    return re.findall(r"'#([\w-]+)'", source(JS / "selectors.js"))


def test_every_selector_names_an_element_of_the_page(client):
    page = client.get("/").get_data(as_text=True)
    missing = [i for i in selectors() if f'id="{i}"' not in page]
    assert selectors() and missing == []


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(JS)))
def test_no_module_but_selectors_js_looks_an_element_up_by_a_literal_id(path):
    if path.name == "selectors.js":
        return
    ids = re.findall(r"""\$\(\s*['"`]#|querySelector(?:All)?\(\s*['"`]#|getElementById\(""", source(path))
    assert ids == [], f"{path.name} looks an element up by id; add it to SEL in selectors.js"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(JS)))
def test_lines_are_at_most_120_characters(path):
    long = [n for n, line in enumerate(source(path).splitlines(), 1) if len(line) > 120]
    assert long == [], f"{path.name}: lines {long} are longer than 120 characters"


@pytest.mark.parametrize("name", STAGE_VIEWS + ["model", "timing"])
def test_every_view_has_load_and_render(name):
    text = source(JS / "views" / f"{name}.js")
    assert re.search(r"^export (async )?function load\(", text, re.M), f"{name}.js has no load(ctx)"
    assert re.search(r"^export (async )?function render\(container, ", text, re.M), f"{name}.js has no render"


def test_no_limit_format_or_width_is_typed_into_the_page():
    """The form's ranges, the formats, the draft sources and the lens width come from the boot JSON."""
    html = (JS.parents[1] / "templates" / "index.html").read_text(encoding="utf-8")
    fields = re.findall(r"<input[^>]*data-field[^>]*>", html)
    assert len(fields) == 6 and [f for f in fields if re.search(r"\b(?:min|max|value)=", f)] == []
    assert "<option" not in html
    for path in MODULES:
        text = source(path)
        assert "'int4'" not in text and "'early-exit'" not in text, path.name
        assert "[1, 2, 3, 4, 5]" not in text, path.name
