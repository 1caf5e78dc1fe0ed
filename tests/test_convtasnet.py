"""The Conv-TasNet backbone assembled from the CSC model's layers."""

import jax
import jax.numpy as jnp
import pytest

from csc_jax.models.convtasnet import ConvTasNetBackbone


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_backbone_separates_into_n_src_float32_waveforms(dtype):
    model = ConvTasNetBackbone(
        enc_filters=16, enc_kernel=8, bottleneck=16, hidden=32, conv_kernel=3, blocks=2,
        repeats=1, n_src=3, dtype=dtype,
    )  # fmt: skip
    mixture = jax.random.normal(jax.random.PRNGKey(0), (2, 803))  # not a multiple of the hop
    params = model.init(jax.random.PRNGKey(1), mixture)["params"]
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(params))
    # One shared encoder, trunk and decoder; one mask layer for all sources.
    assert {"WaveformEncoder_0", "SeparatorTrunk_0", "WaveformDecoder_0"} <= set(params)
    assert params["Dense_0"]["kernel"].shape == (16, 3 * 16)
    estimates = model.apply({"params": params}, mixture)
    assert estimates.shape == (2, 3, 803) and estimates.dtype == jnp.float32
    assert bool(jnp.all(jnp.isfinite(estimates)))
    # Separate sources of one mixture differ (each has its own mask).
    assert float(jnp.max(jnp.abs(estimates[:, 0] - estimates[:, 1]))) > 0
