"""Shared fixtures: a tiny config that trains in seconds on CPU."""

import os

import pytest

from csc_jax import allocator

# Tests run on the host CPU; more than one simulated device is opted into per test process.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# The tests' programs are tiny, so XLA's LLVM code generation is most of their cost: compile
# with the fast flags (same HLO program; tests/_train_worker.py) in this process and its
# children. A child whose speed matters clears them (subprocess_env(fast_compile=False)).
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "")
        + " --xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
    ).strip()
# pytest's own process cannot re-execute itself (its output capture is set up), so the host
# allocator settings go into the environment: xdist workers and every subprocess start with
# them (csc_jax/allocator.py; `make test` sets them for the main process too).
allocator.set_for_children()

# The modules whose module-scoped fixtures train for minutes, longest first. `make test` hands
# whole modules to the xdist workers in collection order (--dist loadscope
# --no-loadscope-reorder), so these go first; ordered by test count instead (xdist's default),
# test_extraction_quality's 3-minute fixture started last and made the run's tail (a fresh
# `make test` took 12 min 2 s at 766de58, 2026-12-07).
SLOW_MODULES_FIRST = (
    "test_extraction_quality.py",
    "test_results.py",
    "test_parallel.py",
    "test_benchmark_memory.py",
    "test_entry_points.py",
    "test_benchmark.py",
    "test_resilience.py",
)


def pytest_collection_modifyitems(session, config, items):
    """Put SLOW_MODULES_FIRST's tests first (a stable sort: order within a module is kept)."""
    rank = {name: i for i, name in enumerate(SLOW_MODULES_FIRST)}
    items.sort(key=lambda item: rank.get(os.path.basename(str(item.path)), len(rank)))


def make_tiny_config(cache_dir, **overrides):
    from csc_jax.config import base_config, set_dotted

    c = base_config()
    # The waveform front end at 8 kHz whatever the schema's defaults: most tests were written
    # for it; tests/test_stft.py's stft_config() switches to the time-frequency front end.
    c.model.frontend = "waveform"
    c.data.sample_rate = 8000
    c.data.cache_dir = str(cache_dir)
    c.data.segment_seconds = 0.1
    c.data.batch_size = 4
    c.data.synthetic.num_train_speakers = 6
    c.data.synthetic.num_test_speakers = 4
    c.data.synthetic.train_utterances_per_speaker = 3
    c.data.synthetic.test_utterances_per_speaker = 3
    c.data.synthetic.min_seconds = 0.5
    c.data.synthetic.max_seconds = 0.8
    c.mixing.num_conditions = 2
    m = c.model
    m.enc_filters, m.enc_kernel, m.bottleneck, m.hidden = 16, 8, 16, 32
    m.blocks, m.repeats, m.extraction_blocks = 2, 1, 1
    m.speaker_dim, m.attention_heads, m.attention_dim = 16, 2, 16
    c.optim.warmup_steps = 1
    c.optim.learning_rate = 3e-3
    c.train.steps = 4
    c.train.log_every = 1
    c.train.checkpoint_every = 2
    c.train.progress_bar = False
    c.train.eval_at_end = False
    c.data.synthetic.num_val_speakers = 4
    c.data.synthetic.val_utterances_per_speaker = 3
    c.eval.seconds = 0.5
    c.eval.max_trials = 40
    c.eval.batch_size = 8
    c.eval.extraction_max_trials = 20
    c.eval.bootstrap_replicates = 100
    c.eval.reference_rates = ()
    c.eval.validation_every = 2
    c.eval.validation_trials = 40
    for key, value in overrides.items():
        set_dotted(c, key, value)
    return c


def save_folder_corpus(cache_dir, root, splits=("train", "test")) -> dict[str, str]:
    """The tiny config's embedded-corpus splits written as folder corpora (VoxCeleb layout,
    ``<root>/<split>/<speaker>/<session>/<utt>.wav``, 8 kHz): {split: folder}."""
    from csc_jax.data import synthetic

    c = make_tiny_config(cache_dir)
    folders = {}
    for split in splits:
        corpus = synthetic.load_or_generate(c.data.synthetic, split, c.data.sample_rate, cache_dir)
        folders[split] = str(synthetic.save_wav_tree(corpus, os.path.join(root, split)))
    return folders


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory):
    """One corpus cache for the whole session (generation is deterministic)."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def tiny_config(shared_cache):
    return make_tiny_config(shared_cache)
