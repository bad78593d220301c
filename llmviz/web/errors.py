"""One JSON error shape for every API error:

    {"error": {"status": 400, "message": "temperature must be between 0 and 2", "field": "temperature"}}

`field` names the request field at fault, or is null. HTML pages keep Flask's
ordinary error pages; everything under /api (and /healthz) answers in this shape.
"""
from flask import current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from .runs import StoreUnavailable

MESSAGES = {
    400: "the request could not be understood",
    404: "there is nothing at {method} {path}; docs/api.md lists the endpoints",
    405: "{method} is not allowed on {path}",
    413: "the request body is too large (the limit is {limit} bytes)",
    429: "the server is busy; try again in a moment",
    503: "the server cannot answer right now; try again in a moment",
    500: "the server hit an unexpected error; the server log has the details",
}


class ApiError(Exception):
    def __init__(self, status: int, message: str, field: str | None = None):
        super().__init__(message)
        self.status, self.message, self.field = status, message, field


def error_body(status: int, message: str, field=None) -> dict:
    return {"error": {"status": status, "message": message, "field": field}}


def error_response(status: int, message: str, field=None):
    return jsonify(error_body(status, message, field)), status


def wants_json() -> bool:
    return request.path.startswith("/api") or request.path == "/healthz"


def default_message(status: int) -> str:
    return MESSAGES.get(status, "request failed").format(
        method=request.method, path=request.path, limit=current_app.config.get("MAX_CONTENT_LENGTH"))


def register_error_handlers(app):
    @app.errorhandler(ApiError)
    def handle_api_error(e):
        return error_response(e.status, e.message, e.field)

    @app.errorhandler(StoreUnavailable)
    def handle_store_unavailable(e):        # Redis down: busy, not broken (Retry-After: limits.py)
        app.logger.warning("%s %s: %s", request.method, request.path, e)
        return error_response(503, f"{e}; try again in a moment")

    @app.errorhandler(HTTPException)
    def handle_http(e):
        if not wants_json():
            return e
        message = default_message(e.code) if e.code in MESSAGES else (e.description or e.name)
        response = error_response(e.code, message)[0]
        if e.code == 405 and e.valid_methods:
            response.headers["Allow"] = ", ".join(e.valid_methods)
        return response, e.code

    @app.errorhandler(Exception)
    def handle_unexpected(e):
        app.logger.exception("unhandled error on %s %s", request.method, request.path)
        if not wants_json():
            return "Internal Server Error", 500
        return error_response(500, default_message(500))
