"""Every shipped config loads, validates and states its command in its docstring."""

from __future__ import annotations

import importlib.util
import os

import pytest

from csc_jax.config import base_config, validate_config
from csc_jax.config.schema import flatten as base_flat

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(
    f for f in os.listdir(os.path.join(REPO, "configs")) if f.endswith(".py") and f[0] != "_"
)


def _load(name):
    spec = importlib.util.spec_from_file_location(name[:-3], os.path.join(REPO, "configs", name))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_shipped_configs_are_all_here():
    assert {"default.py", "gpu.py", "tts.py", "benchmark.py"} <= set(CONFIGS)


@pytest.mark.parametrize("name", CONFIGS)
def test_config_validates_and_documents_its_command(name):
    module = _load(name)
    config = module.get_config()
    experiment = config.experiment if name == "benchmark.py" else config
    validate_config(experiment)
    # Same keys as the base config: a config may change values, never invent keys.
    assert set(experiment.to_dict()) == set(base_config().to_dict())
    assert "python " in module.__doc__ and f"configs/{name}" in module.__doc__


def test_benchmark_preset_takes_the_gpu_experiment_by_argument():
    module = _load("benchmark.py")
    gpu = _load("gpu.py").get_config()
    config = module.get_config("gpu")
    assert config.experiment.to_dict() == gpu.to_dict()
    assert config.backbone.paper.batch_size == 4  # the Conv-TasNet paper's batch
    assert module.get_config().experiment.to_dict() == base_config().to_dict()
    with pytest.raises(ValueError, match="configs/benchmark.py:tpu"):
        module.get_config("tpu")


def _write_folder_corpus(root, rate=16000, seconds=3.5, speakers=3):
    """VoxCeleb layout <speaker>/<session>/<utt>.wav: 2 sessions x 2 utterances per speaker."""
    import numpy as np
    import soundfile

    rng = np.random.default_rng(0)
    for s in range(speakers):
        for session in range(2):
            for u in range(2):
                path = root / f"id{s:05d}" / f"session{session}" / f"{u:05d}.wav"
                path.parent.mkdir(parents=True, exist_ok=True)
                audio = 0.1 * rng.standard_normal(int(rate * seconds))
                soundfile.write(str(path), audio.astype(np.float32), rate)


def _tiny_model(config):
    """The test suite's tiny model sizes (tests/conftest.py) on a shipped config."""
    m = config.model
    m.enc_filters, m.bottleneck, m.hidden = 16, 16, 32
    m.blocks, m.repeats, m.extraction_blocks = 2, 2, 1
    m.speaker_dim, m.attention_heads, m.attention_dim = 16, 2, 16


def test_voxceleb_config_trains_three_steps_on_a_folder_corpus(tmp_path):
    """configs/voxceleb.py as shipped (16 kHz, 3 s crops, folder source, block remat) with the
    tiny model, B=2 and 3 steps on 12 generated wav files of 3 speakers."""
    from csc_jax.training import loop

    config = _load("voxceleb.py").get_config()
    assert (config.data.source, config.data.sample_rate) == ("folder", 16000)
    assert 2.0 <= config.data.segment_seconds <= 3.0 and config.model.remat == "block"
    _write_folder_corpus(tmp_path / "vox")
    config.data.folder.train_root = str(tmp_path / "vox")
    config.data.cache_dir = str(tmp_path / "cache")
    config.data.batch_size = 2
    config.data.num_workers = 0
    _tiny_model(config)
    config.train.steps = 3
    config.train.log_every = 1
    config.train.checkpoint_every = 3
    config.train.progress_bar = False
    config.train.eval_at_end = False  # the config has no separate validation key
    validate_config(config)
    _, state = loop.train(config, str(tmp_path / "run"))
    assert int(state.step) == 3


def test_voxceleb_config_without_train_root_names_the_key(tmp_path):
    from csc_jax.errors import ConfigError
    from csc_jax.training import loop

    config = _load("voxceleb.py").get_config()
    config.data.cache_dir = str(tmp_path / "cache")
    with pytest.raises(ConfigError, match="data.folder.train_root"):
        loop.train(config, str(tmp_path / "run"))


def test_gpu_configs_rematerialise_the_tcn():
    # The figures in docs/gpu_memory.md that size these configs' batches assume it.
    for name in ("gpu.py", "voxceleb.py"):
        assert _load(name).get_config().model.remat == "block"


def test_default_and_waveform_configs_are_the_front_end_comparisons_two_systems():
    """configs/default.py (and configs/stft.py, its name on docs/frontends.md) is the page's
    csc system; configs/waveform.py is its waveform-time system (the step count the runner
    chose from the side-by-side step times in results/frontends/step_times.json)."""
    import json

    from csc_jax import experiments
    from csc_jax.config import flatten

    default = flatten(_load("default.py").get_config())
    assert flatten(_load("stft.py").get_config()) == default
    assert default["model.frontend"] == "stft"
    (variant,) = [v for v in experiments.select_variants(["waveform-time"]) if v.match_time_of]
    with open(os.path.join(REPO, "results", "frontends", "waveform-time-s0", "config.json")) as f:
        steps = json.load(f)["train"]["steps"]
    page = flatten(experiments.run_config(_load("stft.py").get_config(), variant, 0, steps))
    waveform = flatten(_load("waveform.py").get_config())
    assert waveform == page, {k for k, v in waveform.items() if page[k] != v}
    demo = flatten(_load("demo.py").get_config())
    assert {k for k, v in demo.items() if default[k] != v} == {
        "train.steps",
        "train.checkpoint_every",
        "eval.validation_every",
        "eval.extraction_max_trials",
    }


def test_tts_ablations_each_change_one_component():
    module = _load("tts.py")
    full = module.get_config()
    assert full.data.source == "mixed" and full.data.augment.speed_factors == (0.9, 1.0, 1.1)
    # No random channels in the recipe (they cost 8.7-13.1 points, docs/transfer_channel.md);
    # 'channel' adds them back, so it is the recipe of results/transfer-channel/.
    a = full.data.augment
    assert (a.eq_prob, a.band_limit_prob, a.telephone_prob, a.reverb_prob) == (0, 0, 0, 0)
    old = module.get_config("channel").data.augment
    assert (old.eq_prob, old.band_limit_prob, old.telephone_prob, old.reverb_prob) == (
        0.5,
        0.3,
        0.1,
        0.3,
    )
    for name, overrides in module.ABLATIONS.items():
        config = module.get_config(name)
        validate_config(config)
        changed = {k for k, v in base_flat(config).items() if v != base_flat(full)[k]}
        assert changed == {k for k, v in overrides.items() if base_flat(full)[k] != v}, name
    plain = module.get_config("plain")
    assert plain.data.source == "folder" and plain.data.augment.to_dict() == (
        base_config().data.augment.to_dict()
    )
    with pytest.raises(ValueError, match="configs/tts.py:loud"):
        module.get_config("loud")
