"""Every shipped config loads, validates and states its command in its docstring."""

from __future__ import annotations

import importlib.util
import os

import pytest

from csc_jax.config import base_config, validate_config

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
