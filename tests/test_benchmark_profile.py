"""The profile breakdown's attribution of XLA ops to model parts (the traced end to end run is
in test_benchmark.py's smoke test)."""

from csc_jax.benchmarking.profile import op_areas


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
