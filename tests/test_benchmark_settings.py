"""What a benchmark run measures: settings validation and the preset + flags -> settings."""

import dataclasses
import json

import pytest

from configs.benchmark import get_config
from csc_jax.benchmarking.settings import (
    MODES,
    BackboneShapes,
    BenchSettings,
    backbone_shapes_from_experiment,
    settings_from_preset,
)
from csc_jax.errors import ConfigError


def test_settings_validation():
    with pytest.raises(ConfigError, match="bogus"):
        BenchSettings(modes=("bogus",)).validate()
    with pytest.raises(ConfigError, match="parallel"):
        BenchSettings(modes=("train",), parallel=("dp",)).validate()
    with pytest.raises(ConfigError, match="backbone"):
        BenchSettings(modes=("backbone",)).validate()
    with pytest.raises(ConfigError, match="steps"):
        BenchSettings(modes=("train",), steps=0).validate()
    with pytest.raises(ConfigError, match="loss_shape"):
        BenchSettings(modes=("losses",), loss_shape=(16, 1, 100)).validate()
    with pytest.raises(ConfigError, match="batch_sizes"):
        BenchSettings(modes=("train",), batch_sizes=(0,)).validate()
    with pytest.raises(ConfigError, match="roofline_matmul_sizes"):
        BenchSettings(modes=("roofline",), roofline_matmul_sizes=()).validate()
    with pytest.raises(ConfigError, match="roofline_stream_mib"):
        BenchSettings(modes=("roofline",), roofline_stream_mib=0).validate()
    shapes = backbone_shapes_from_experiment(get_config().experiment)
    with pytest.raises(ConfigError, match="pytorch_python"):
        BenchSettings(
            modes=("backbone",), backbone=(shapes,), pytorch_python="/no/such/python"
        ).validate()
    BenchSettings(modes=MODES, backbone=(shapes,)).validate()


def test_settings_from_the_preset_and_flags():
    preset = get_config()
    s = settings_from_preset(preset)
    s.validate()
    assert s.modes == MODES and MODES[0] == "roofline"  # the preset's 'all'
    assert s.roofline_matmul_sizes == (256, 512, 1024, 2048) and s.roofline_stream_mib == 128
    assert s.parallel == ("sharding", "pmap") and s.dtypes == ("float32",)
    assert [b.name for b in s.backbone] == ["paper", "demo"]
    paper, demo = s.backbone
    assert paper == BackboneShapes(name="paper", **preset.backbone.paper.to_dict())
    # 'demo' is derived from the experiment: its model sizes, rate, crop and B * K mixtures.
    exp = preset.experiment
    assert demo == backbone_shapes_from_experiment(exp)
    assert demo.batch_size == exp.data.batch_size * exp.mixing.num_conditions == 24
    assert demo.segment_samples == 16000 and not demo.same_shapes(paper)
    assert demo.same_shapes(dataclasses.replace(demo, name="other"))
    assert demo.describe() == "N=128 L=64 B=64 H=128 P=3 X=4 R=2, 16000 Hz, 24 x 1.0 s"

    # Flags (strings, as absl's DEFINE_list gives them) replace the preset's values.
    s = settings_from_preset(
        preset,
        mode="train, losses",
        parallel=["pmap"],
        batch_sizes=["2", "4"],
        segment_seconds=["0.5"],
        steps=7,
        backbone=["demo"],
        pytorch_threads=1,
        matmul_sizes=["64", "128"],
    )
    assert s.modes == ("train", "losses") and s.parallel == ("pmap",)
    assert s.batch_sizes == (2, 4) and s.segment_seconds == (0.5,) and s.steps == 7
    assert [b.name for b in s.backbone] == ["demo"] and s.pytorch_threads == 1
    assert s.roofline_matmul_sizes == (64, 128)
    assert json.loads(json.dumps(s.to_dict()))["backbone"][0]["batch_size"] == 24

    # A preset's 'demo' entry overrides the derived fields.
    preset.backbone.demo.batch_size = 2
    assert settings_from_preset(preset, backbone=["demo"]).backbone[0].batch_size == 2

    with pytest.raises(ConfigError, match="'nonsense' are not in the preset"):
        settings_from_preset(preset, backbone=["nonsense"])
    with pytest.raises(ConfigError, match="batch_sizes"):
        settings_from_preset(preset, batch_sizes=["four"])
    with pytest.raises(ConfigError, match="matmul_sizes"):
        settings_from_preset(preset, matmul_sizes=["big"])
