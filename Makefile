# Quickstart:  make demo   (set up, train CSC on the embedded corpus, evaluate, print the table)
#              make test   (set up, lint, run the test suite)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_DIR ?= runs/demo

.PHONY: setup demo test lint format results results-tts benchmark clean

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(PY) train.py --config configs/demo.py --workdir $(DEMO_DIR)

# --dist loadscope: each worker runs whole modules, so a module-scoped fixture that trains is
# built once (with --dist load, xdist split or interleaved modules and test_results' runner
# fixture was built two or three times; loadgroup's xdist_group marks do nothing with
# pytest 9.2 + xdist 3.8, which rename nodes through an attribute pytest 9 no longer reads).
# --no-loadscope-reorder: modules go out in collection order, which tests/conftest.py starts
# with the modules whose fixtures train for minutes (by default xdist sends the modules with
# the most tests first, and test_extraction_quality's 3-minute fixture, 3 tests, came last).
# pytest runs under the host allocator settings that train.py sets for itself
# (csc_jax/allocator.py): `python -m csc_jax.allocator CMD` runs CMD with them.
test: setup lint
	$(PY) -m csc_jax.allocator $(PY) -m pytest -q -n 3 --dist loadscope --no-loadscope-reorder \
		--durations=15 tests

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: setup
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

# Issue 28's campaigns, seven systems x 3 seeds each, run in pieces: a rerun skips the runs
# already recorded (results/README.md) and writes the page once every record exists; add
# --only VARIANT/SEED to run one piece. simclr-time times the csc and simclr steps side by
# side, so it should run with nothing else on the machine.
# docs/results.md: the embedded corpus, configs/results.py (3000 steps); records in results/results/.
SEVEN := csc,simclr,simclr-time,csc-no-xattn,csc-no-sep,csc-no-csc,csc-K1
results: setup
	$(PY) scripts/run_results.py --config configs/results.py --seeds 0,1,2 --variants $(SEVEN) \
		--workdir_root runs/results --results_root results --campaign results --out docs/results.md \
		--title 'CSC against SimCLR and the ablations at convergence (embedded corpus)'

# docs/results_tts.md: the recorded voices (needs the local TTS corpus, docs/tts_corpus.md), the
# transfer recipe configs/tts.py trained 2500 steps; records in results/results_tts/.
results-tts: setup
	$(PY) scripts/run_results.py --config configs/tts.py --steps 2500 --seeds 0,1,2 --variants $(SEVEN) \
		--workdir_root runs/results_tts --results_root results --campaign results_tts \
		--out docs/results_tts.md \
		--title 'CSC against SimCLR and the ablations at convergence (recorded voices)'

benchmark: setup
	$(PY) benchmark.py --config configs/benchmark.py

clean:
	rm -rf runs cache .pytest_cache
