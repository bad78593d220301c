"""Response headers that make the page safe to open in a classroom, and the debug-mode rule.

Content-Security-Policy (W3C CSP Level 3): scripts only from this server, so an
injected `<script>` or `onerror=` attribute cannot run even if some text ever
reached the page unescaped; templates therefore hold no inline script (data goes
through `data-` attributes or a JSON block, STYLE.md 13). Framing is refused two
ways, `frame-ancestors` for current browsers and X-Frame-Options for old ones.
"""
CSP = "; ".join([
    "default-src 'self'",
    # No 'unsafe-eval': plotly.js compiles code with Function() only in regl, its WebGL
    # renderer (scattergl and friends); the page draws heatmaps and bars, which do not.
    "script-src 'self'",
    # plotly.js sets style attributes and injects a <style> element for its own CSS
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:",
    "font-src 'self' data:",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])

HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def add_security_headers(response):
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def register_security(app):
    """Add the headers to every response, and refuse Flask debug mode outside development.

    The Werkzeug debugger runs arbitrary Python for anyone who can reach the page, so
    debug is only allowed when the app is explicitly configured for development
    (LLMVIZ_ENV="development") and never in tests or production.
    """
    if app.debug and app.config.get("LLMVIZ_ENV") != "development":
        raise RuntimeError("Flask debug mode is on outside development; set LLMVIZ_ENV=development "
                           "to allow it, never on a shared server")
    app.after_request(add_security_headers)
