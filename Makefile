# Two commands for a newcomer:  make run   (set up + start the app)   make test   (set up + all tests)
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
HOST   ?= 127.0.0.1
PORT   ?= 5000

.PHONY: setup run serve test bench model chromium redis-server reference animation

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed requirements-test.txt
	$(PY) -m pip install --quiet -r requirements-test.txt
	touch $@

setup: $(VENV)/.installed

model: setup                 ## download (first time) and convert the default model
	$(PY) -m llmviz info

run: model
	$(PY) app.py --host $(HOST) --port $(PORT)

serve: model                 ## production: gunicorn, 127.0.0.1:8000 (docs/production.md)
	$(VENV)/bin/gunicorn -c gunicorn.conf.py

chromium:                    ## Debian's chromium for the browser tests
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

redis-server:                ## Debian's redis-server: the Redis tests start their own (tests/conftest.py)
	@command -v redis-server >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; }

test: model chromium redis-server $(VENV)/.installed-test
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

animation: model chromium $(VENV)/.installed-test   ## docs/media: the overview's animation and stills (not part of make test)
	@command -v ffmpeg >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null; }
	$(PY) tools/record_overview.py

bench: model
	$(PY) -m llmviz bench

REFENV ?= .refenv
reference: model             ## regenerate tests/fixtures with transformers in a side env (see tools/README.md)
	test -x $(REFENV)/bin/python || $(PYTHON) -m venv $(REFENV)
	$(REFENV)/bin/pip install --quiet torch==2.13.0 transformers accelerate gguf tokenizers safetensors numpy
	LLMVIZ_ALICE=llmviz/data/alice-ch1-2.txt $(REFENV)/bin/python tools/make_reference.py
