# `make app` and `make test` set everything up on a fresh machine (see scripts/setup.sh).
PY := .venv/bin/python
ARGS ?=

.PHONY: app test lint setup bench assets

setup:
	@bash scripts/setup.sh dev

app:
	@bash scripts/setup.sh app
	$(PY) app.py $(ARGS)

test: setup
	HF_HUB_OFFLINE=1 $(PY) -m ruff check .
	HF_HUB_OFFLINE=1 $(PY) -m ruff format --check .
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q $(ARGS)

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

bench: setup
	HF_HUB_OFFLINE=1 $(PY) bench/bench_model.py
	HF_HUB_OFFLINE=1 $(PY) bench/bench_segment.py
	HF_HUB_OFFLINE=1 $(PY) bench/bench_canvas.py
	HF_HUB_OFFLINE=1 $(PY) bench/bench_api.py
	HF_HUB_OFFLINE=1 $(PY) bench/bench_track.py
	HF_HUB_OFFLINE=1 $(PY) bench/bench_startup.py
	HF_HUB_OFFLINE=1 $(PY) bench/bench_project.py
	HF_HUB_OFFLINE=1 $(PY) bench/bench_rle.py

assets: setup
	$(PY) scripts/make_assets.py
