"""The profile breakdown: attribution of XLA ops to model parts and op families, the compiled
HLO it reads, and a traced step whose families add up (the CSC step's trace is checked in
test_benchmark.py's smoke test)."""

import jax
import jax.numpy as jnp
import optax
import pytest

from csc_jax.benchmarking.backbone import bench_backbone
from csc_jax.benchmarking.profile import (
    FAMILIES,
    FAMILY_NOTES,
    _exclusive_ms,
    hlo_ops,
    op_areas,
    op_family,
    profile_breakdown,
)
from csc_jax.benchmarking.settings import BackboneShapes


def test_op_name_attribution():
    assert op_areas(
        "jit(train_step)/transpose(jvp(CSCModel))/CSCModel.bottom_up/trunk/TCN_0/TCNBlock_3/"
        "GlobalLayerNorm_1/mul"
    ) == ("trunk", "GlobalLayerNorm", "bwd")
    assert op_areas(
        "jit(step)/jvp(ConvTasNetBackbone)/SeparatorTrunk_0/TCN_0/TCNBlock_1/Dense_1/dot"
    ) == ("SeparatorTrunk", "Dense", "fwd")
    assert op_areas("jit(train_step)/jvp(CSCModel)/CSCModel.global_vector/attention/key/dot") == (
        "attention",
        "key",
        "fwd",
    )
    assert op_areas("jit(train_step)/vmap()/mix_example/xor")[0].startswith("(outside the model")
    # A submodule's own method (gLN's standardise, folded into the next Dense) is that layer.
    assert op_areas(
        "jit(step)/jvp(ConvTasNetBackbone)/SeparatorTrunk_0/TCN_0/TCNBlock_0/"
        "GlobalLayerNorm_1.standardise/sub"
    ) == ("SeparatorTrunk", "GlobalLayerNorm", "fwd")


# (op_name, innermost source files, family): op names as a trace of the tiny config's train
# step has them (tests/conftest.py make_tiny_config, jaxlib 0.10), files relative.
_STEP = "jit(train_step)/"
_FWD, _BWD = _STEP + "jvp(CSCModel)/CSCModel.", _STEP + "transpose(jvp(CSCModel))/CSCModel."
_TRUNK = "bottom_up/trunk/TCN_0/TCNBlock_1/"
_MODEL_FILES = ("csc_jax/models/separator.py", "csc_jax/training/objectives.py")
REAL_OPS = [
    (_BWD + _TRUNK + "Dense_1/dot_general", ("flax/linen/linear.py",), "1x1 Dense"),
    (_BWD + "bottom_up/trunk/Dense_0/reduce_sum", ("flax/linen/linear.py",), "1x1 Dense"),
    (_FWD + "bottom_up/speaker_hidden/dot_general", ("flax/linen/linear.py",), "1x1 Dense"),
    (_BWD + "separate/mask_out/reduce_sum", ("flax/linen/linear.py",), "1x1 Dense"),
    (_FWD + "separate/film/dot_general", ("flax/linen/linear.py",), "1x1 Dense"),
    (_BWD + _TRUNK + "DepthwiseConv1D_0/mul", _MODEL_FILES, "depthwise conv"),
    (_FWD + _TRUNK + "DepthwiseConv1D_0/jit(_pad)/pad", _MODEL_FILES, "depthwise conv"),
    (_BWD + _TRUNK + "GlobalLayerNorm_1/reduce_sum", _MODEL_FILES, "gLN"),
    (_FWD + "bottom_up/trunk/GlobalLayerNorm_0/sqrt", _MODEL_FILES, "gLN"),
    (_BWD + _TRUNK + "GlobalLayerNorm_1.standardise/mul", _MODEL_FILES, "gLN"),
    (_BWD + _TRUNK + "PReLU_1/mul", ("flax/linen/activation.py",), "PReLU"),
    (_BWD + "separate/mask_act/reduce_sum", ("flax/linen/activation.py",), "PReLU"),
    (_BWD + _TRUNK + "pad", _MODEL_FILES, "TCN residual / skip"),
    (_FWD + "bottom_up/trunk/TCN_0/add", _MODEL_FILES, "TCN residual / skip"),
    (_FWD + "bottom_up/encoder/Dense_0/dot_general", ("flax/linen/linear.py",), "framing"),
    (_FWD + "bottom_up/encoder/concatenate", ("csc_jax/models/encoder.py",), "framing"),
    (_BWD + "separate/decoder/jit(_pad)/pad", ("csc_jax/models/encoder.py",), "framing"),
    # The STFT front end (model.frontend='stft'): the model's own methods, no submodule.
    (_FWD + "bottom_up/CSCModel.analyse/jit(fft)/fft", ("csc_jax/models/stft.py",), "framing"),
    (_FWD + "bottom_up/CSCModel.analyse/log", ("csc_jax/models/stft.py",), "framing"),
    (_BWD + "separate/CSCModel.synthesise/mul", ("csc_jax/models/stft.py",), "framing"),
    (_BWD + "global_vector/attention/key/dot_general", ("flax/linen/linear.py",), "attention"),
    (
        _BWD + "global_vector/attention/frames_norm/mul",
        ("flax/linen/normalization.py",),
        "attention",
    ),  # fmt: skip
    (_FWD + "global_vector/attention/exp", ("csc_jax/losses.py",), "attention"),
    (_FWD + "global_vector/reduce_sum", ("csc_jax/models/csc.py",), "attention"),
    (_FWD + "separate/mul", ("csc_jax/models/csc.py",), "other"),
    (_STEP + "jvp()/reduce_sum", ("csc_jax/losses.py", "csc_jax/training/objectives.py"), "loss"),
    (_STEP + "transpose(jvp(...kd,...jd->...kj))/dot_general", ("csc_jax/losses.py",), "loss"),
    (_STEP + "jvp()/stack", ("csc_jax/training/objectives.py",), "loss"),
    (
        _STEP + "vmap()/vmap(jit(_threefry_split))/mix_example/xor",
        ("csc_jax/data/mixing.py",),
        "mixing",
    ),  # fmt: skip
    (_STEP + "vmap(jit(fft))/jit(fft)/fft", ("csc_jax/data/mixing.py",), "mixing"),
    (_STEP + "sqrt", ("optax/_src/transform.py", "optax/_src/base.py"), "optimizer"),
    (_STEP + "jit(_where)/select_n", ("optax/_src/numerics.py",), "optimizer"),
    (_STEP + "is_finite", ("csc_jax/training/step.py",), "other"),
    ("", (), "other"),
]


@pytest.mark.parametrize("op_name,files,family", REAL_OPS)
def test_op_family_of_real_op_names(op_name, files, family):
    family = "framing / overlap-add" if family == "framing" else family
    assert family in FAMILIES
    assert op_family(op_name, ["/repo/.venv/lib/python3.11/site-packages/" + f for f in files]) == (
        family
    )


def test_op_family_without_stack_frames():
    """Without the HLO's stack tables, outside the model the op_name alone decides."""
    assert op_family(_STEP + "transpose(jvp())/reduce_sum") == "loss"
    assert op_family(_STEP + "vmap()/vmap(jit(_threefry_split))/mix_example/xor") == "mixing"
    assert op_family(_STEP + "sqrt") == "other"
    assert op_family(_BWD + _TRUNK + "GlobalLayerNorm_1/mul") == "gLN"
    assert set(FAMILY_NOTES) == set(FAMILIES)


def test_hlo_ops_reads_matmul_flops_and_stacks():
    def project(a, b):
        return jnp.tanh(a @ b)

    a, b = jnp.ones((8, 16)), jnp.ones((16, 4))
    ops = hlo_ops(jax.jit(project).lower(a, b).compile().as_text())
    heaviest = max(ops.values(), key=lambda op: op.matmul_flops)
    assert heaviest.matmul_flops == 2 * 8 * 16 * 4
    assert heaviest.bytes == 4 * (8 * 16 + 16 * 4 + 8 * 4)  # float32 operands and output
    assert "dot_general" in heaviest.op_name and heaviest.files[0] == __file__
    assert op_family(heaviest.op_name, heaviest.files) == "other"  # neither model nor known file

    tx = optax.adam(1e-3)
    params = {"w": jnp.ones((4, 4))}
    update = jax.jit(lambda g, s, p: tx.update(g, s, p)[0])
    ops = hlo_ops(update.lower(params, tx.init(params), params).compile().as_text())
    # Every op traced from Python (not the parameters, which carry argument names) is optax's.
    traced = [op for op in ops.values() if op.files]
    assert traced and all("/optax/" in op.files[0] for op in traced)
    assert {op_family(op.op_name, op.files) for op in traced} == {"optimizer"}


def test_exclusive_time_does_not_count_nested_ops_twice():
    events = [
        {"name": "while.1", "pid": 1, "tid": 1, "ts": 0.0, "dur": 10_000.0},
        {"name": "fusion.2", "pid": 1, "tid": 1, "ts": 2_000.0, "dur": 3_000.0},
        {"name": "dot.3", "pid": 1, "tid": 2, "ts": 1_000.0, "dur": 4_000.0},  # other thread
    ]
    assert sorted(_exclusive_ms(events)) == [("dot.3", 4.0), ("fusion.2", 3.0), ("while.1", 7.0)]


def test_op_families_of_a_traced_backbone_step(tmp_path):
    """A real trace (tiny Conv-TasNet backbone step): every family's time adds up to the op
    total, the backbone's layers land in their families, and the matmul FLOPs in Dense and
    the encoder / decoder."""
    shapes = BackboneShapes(
        name="tiny", enc_filters=16, enc_kernel=8, bottleneck=16, hidden=32, conv_kernel=3,
        blocks=2, repeats=1, sample_rate=8000, segment_seconds=0.1, batch_size=4,
    )  # fmt: skip
    _, timer = bench_backbone(shapes, dtype="float32", steps=1, warmup=0, keep_timer=True)
    prof = profile_breakdown(timer, steps=2, trace_dir=str(tmp_path / "trace"))
    assert "error" not in prof, prof
    assert [row[0] for row in prof["by_family"]] == list(FAMILIES)
    by = {family: (ms, share, gflop, gb) for family, ms, share, gflop, gb in prof["by_family"]}
    assert sum(v[0] for v in by.values()) == pytest.approx(prof["op_ms_per_step"])
    assert sum(v[1] for v in by.values()) == pytest.approx(1.0)
    assert sum(v[3] for v in by.values()) == pytest.approx(prof["gb_moved_per_step"])
    assert by["gLN"][3] > 0 and by["depthwise conv"][3] > 0  # memory-bound families move data
    assert sum(row[1] for row in prof["by_layer"]) == pytest.approx(prof["op_ms_per_step"])
    for family in ("1x1 Dense", "depthwise conv", "gLN", "PReLU", "framing / overlap-add",
                   "loss", "optimizer"):  # fmt: skip
        assert by[family][0] > 0, (family, prof["by_family"])
    assert by["attention"][0] == by["mixing"][0] == 0  # the backbone has neither
    assert by["1x1 Dense"][2] > 0 and by["framing / overlap-add"][2] > 0
    assert by["gLN"][2] == by["depthwise conv"][2] == 0  # no dots there
    for name, family, op_name, ms, _, _ in prof["top_ops"]:
        assert ms >= 0 and family in FAMILIES and name
        if "DepthwiseConv1D" in op_name:
            assert family == "depthwise conv", op_name
        if "GlobalLayerNorm" in op_name:
            assert family == "gLN", op_name
