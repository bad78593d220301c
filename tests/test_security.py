"""Security headers on every response, no inline script, and no debug mode in production (issue 5)."""
import re

import pytest

from llmviz.web import ROOT


@pytest.mark.parametrize("url", ["/", "/healthz", "/api/model", "/api/runs/nope", "/vendor/plotly.min.js"])
def test_every_response_carries_the_security_headers(client, url):
    response = client.get(url)
    csp = dict(part.strip().split(" ", 1) for part in response.headers["Content-Security-Policy"].split(";"))
    assert csp["script-src"] == "'self'"                  # no inline script, no eval
    assert csp["frame-ancestors"] == "'none'"
    assert csp["object-src"] == "'none'"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "no-referrer"


def test_templates_hold_no_inline_script():
    """The CSP forbids inline script, so every <script> must load a file or carry data (type JSON)."""
    for template in (ROOT / "templates").glob("*.html"):
        html = template.read_text()
        for tag, _body in re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S):
            assert "src=" in tag or 'type="application/json"' in tag, f"{template.name}: inline <script{tag}>"
        assert not re.search(r"\son[a-z]+\s*=", html), f"{template.name}: an inline event handler"


def test_debug_mode_is_refused_outside_development(make_app):
    with pytest.raises(RuntimeError, match="debug mode is on outside development"):
        make_app(DEBUG=True)
    assert make_app(DEBUG=True, LLMVIZ_ENV="development").debug


def test_healthz_is_alive(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.get_json()["status"] == "ok"
