"""The PyTorch comparison's plumbing: the baseline script's command line and presets (torch
itself is not needed; the subprocess round trip is in test_benchmark.py's smoke test)."""

import dataclasses
import importlib.util

import jax

from csc_jax.benchmarking import pytorch
from csc_jax.benchmarking.settings import BackboneShapes, backbone_shapes_from_experiment


def test_pytorch_script_presets_match_the_jax_shapes():
    """The PyTorch script's presets are the shapes benchmark.py measures in JAX."""
    spec = importlib.util.spec_from_file_location("ptb", pytorch.PYTORCH_SCRIPT)
    ptb = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ptb)  # imports torch only inside main()
    from configs.benchmark import get_config
    from csc_jax.config import base_config

    demo = backbone_shapes_from_experiment(base_config())
    paper = BackboneShapes(name="paper", **get_config().backbone.paper.to_dict())
    for shapes in (demo, paper):
        args = ptb.parse_args([f"--preset={shapes.name}"])
        for field in dataclasses.asdict(shapes):
            if field != "name":
                assert getattr(args, field) == getattr(shapes, field), (shapes.name, field)
        # benchmark.py passes every shape field explicitly; the parser takes them all.
        cmd = pytorch.pytorch_command("python", shapes, steps=3, warmup=1, threads=2)
        parsed = ptb.parse_args(cmd[2:])
        assert parsed.batch_size == shapes.batch_size and parsed.steps == 3
        assert parsed.device == "cpu"
        on_gpu = pytorch.pytorch_command(
            "python", shapes, steps=3, warmup=1, threads=2, device="cuda"
        )
        assert ptb.parse_args(on_gpu[2:]).device == "cuda"
    # The PyTorch side runs where JAX runs: cuda only when JAX's default backend is a GPU.
    assert pytorch.pytorch_device() == ("cuda" if jax.default_backend() == "gpu" else "cpu")
