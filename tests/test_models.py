"""Shapes, dtypes and basic behaviour of every module of the CSC model."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from csc_jax.models import model_from_config
from csc_jax.models.cross_attention import CrossAttention
from csc_jax.models.encoder import WaveformDecoder, WaveformEncoder, frame, num_frames, overlap_add
from csc_jax.models.separator import (
    TCN,
    DepthwiseConv1D,
    GlobalLayerNorm,
    SeparatorTrunk,
    TCNBlock,
    gln_statistics,
)


def test_frame_and_overlap_add_shapes_and_inverse():
    x = jnp.arange(2 * 50, dtype=jnp.float32).reshape(2, 50)
    f = frame(x, 8)
    assert f.shape == (2, num_frames(50, 8), 8)
    # Frames hold consecutive samples with hop L/2.
    np.testing.assert_array_equal(f[0, 1], x[0, 4:12])
    # With a window that sums to one over the overlap (0.5, 0.5), overlap-add inverts framing
    # everywhere except the first and last half-frame.
    y = overlap_add(f * 0.5, 50)
    np.testing.assert_allclose(y[:, 4:46], x[:, 4:46], rtol=1e-6)


def test_encoder_decoder_shapes():
    x = jax.random.normal(jax.random.PRNGKey(0), (3, 2, 400))
    enc = WaveformEncoder(filters=16, kernel=8)
    p = enc.init(jax.random.PRNGKey(1), x)
    e = enc.apply(p, x)
    assert e.shape == (3, 2, num_frames(400, 8), 16) and e.dtype == jnp.float32
    assert float(e.min()) >= 0.0  # ReLU features
    dec = WaveformDecoder(kernel=8)
    pd = dec.init(jax.random.PRNGKey(2), e, 400)
    assert dec.apply(pd, e, 400).shape == (3, 2, 400)


def test_encoder_rejects_odd_kernel():
    with pytest.raises(ValueError, match="enc_kernel"):
        WaveformEncoder(filters=4, kernel=7).init(jax.random.PRNGKey(0), jnp.zeros((1, 64)))


def test_global_layer_norm_normalises_each_example():
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 30, 8)) * 5 + 3
    ln = GlobalLayerNorm()
    y = ln.apply(ln.init(jax.random.PRNGKey(1), x), x)
    np.testing.assert_allclose(jnp.mean(y, axis=(1, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(jnp.std(y, axis=(1, 2)), 1.0, atol=1e-3)


@pytest.mark.parametrize("offset", [0.0, 1e3])
def test_gln_statistics_match_two_pass_float64(offset):
    # One-pass sums in float32: with a mean 1000x the spread, E[x^2] - E[x]^2 without the
    # shift loses the variance to rounding; the shifted sums keep it.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 500, 128)) * np.array([1.0, 0.1, 3.0])[:, None, None] + offset
    mean, rstd = gln_statistics(jnp.asarray(x, jnp.float32), 1e-8)
    want_mean = x.mean(axis=(1, 2))
    want_rstd = 1.0 / np.sqrt(((x - want_mean[:, None, None]) ** 2).mean(axis=(1, 2)) + 1e-8)
    assert mean.shape == rstd.shape == (3, 1, 1)
    np.testing.assert_allclose(mean[:, 0, 0], want_mean, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(rstd[:, 0, 0], want_rstd, rtol=1e-4)


def _lax_depthwise(x, w, dilation):
    """(N, F, C) * taps (3, C) -> (N, F, C): XLA's grouped dilated convolution, 'same' length."""
    return jax.lax.conv_general_dilated(
        x,
        w[:, None, :],
        window_strides=(1,),
        padding=[(dilation, dilation)],
        rhs_dilation=(dilation,),
        dimension_numbers=("NWC", "WIO", "NWC"),
        feature_group_count=w.shape[-1],
        precision="highest",
    )


def _textbook_tcn_block(p, x, dilation):
    """A TCN block written plainly: two-pass gLN, gLN then Dense, grouped lax conv."""

    def gln(y, q):
        mean = jnp.mean(y, axis=(-2, -1), keepdims=True)
        var = jnp.mean((y - mean) ** 2, axis=(-2, -1), keepdims=True)
        return (y - mean) / jnp.sqrt(var + 1e-8) * q["scale"] + q["bias"]

    def prelu(y, q):
        return jnp.where(y >= 0, y, q["negative_slope"] * y)

    b = x.shape[-1]
    y = x @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"]
    y = gln(prelu(y, p["PReLU_0"]), p["GlobalLayerNorm_0"])
    y = _lax_depthwise(y, p["DepthwiseConv1D_0"]["kernel"], dilation)
    y = y + p["DepthwiseConv1D_0"]["bias"]
    y = gln(prelu(y, p["PReLU_1"]), p["GlobalLayerNorm_1"])
    out = y @ p["Dense_1"]["kernel"] + p["Dense_1"]["bias"]
    return x + out[..., :b], out[..., b:]


@pytest.mark.parametrize("dilation", [1, 4])
def test_tcn_block_matches_the_textbook_block_values_and_gradients(dilation):
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 40, 8))
    block = TCNBlock(hidden=16, kernel=3, dilation=dilation)
    params = block.init(jax.random.PRNGKey(1), x)["params"]
    # Gains and biases away from their initial 1 and 0, so folding them is exercised.
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(2), len(leaves))
    params = jax.tree.unflatten(
        tree, [v + 0.3 * jax.random.normal(k, v.shape) for v, k in zip(leaves, keys, strict=True)]
    )

    def loss(apply, p):
        y, skip = apply(p, x)
        return jnp.sum(jnp.sin(y)) + jnp.sum(skip**2)

    def ours(p, x):
        return block.apply({"params": p}, x)

    def textbook(p, x):
        return _textbook_tcn_block(p, x, dilation)

    with jax.default_matmul_precision("highest"):
        for got, want in zip(ours(params, x), textbook(params, x), strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
        g_ours = jax.grad(lambda p: loss(ours, p))(params)
        g_ref = jax.grad(lambda p: loss(textbook, p))(params)
    for path, got in jax.tree_util.tree_flatten_with_path(g_ours)[0]:
        want = g_ref
        for key in path:
            want = want[key.key]
        scale = float(jnp.max(jnp.abs(want)))
        np.testing.assert_allclose(got, want, atol=1e-4 * scale, err_msg=jax.tree_util.keystr(path))


@pytest.mark.parametrize("dilation", [1, 2, 4])
def test_depthwise_conv_matches_lax_conv(dilation):
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 20, 6))
    conv = DepthwiseConv1D(kernel=3, dilation=dilation)
    p = conv.init(jax.random.PRNGKey(1), x)
    y = conv.apply(p, x)
    ref = _lax_depthwise(x, p["params"]["kernel"], dilation)
    np.testing.assert_allclose(y, ref + p["params"]["bias"], rtol=1e-5, atol=1e-5)


def test_tcn_and_trunk_shapes():
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 3, 25, 16))
    tcn = TCN(hidden=32, kernel=3, blocks=2, repeats=2)
    assert tcn.apply(tcn.init(jax.random.PRNGKey(1), x), x).shape == x.shape
    trunk = SeparatorTrunk(bottleneck=8, hidden=16, kernel=3, blocks=2, repeats=1)
    assert trunk.apply(trunk.init(jax.random.PRNGKey(2), x), x).shape == (2, 3, 25, 8)


def test_cross_attention_shapes_and_mask():
    q = jax.random.normal(jax.random.PRNGKey(0), (2, 3, 8))
    frames = jax.random.normal(jax.random.PRNGKey(1), (2, 12, 5))
    att = CrossAttention(heads=2, head_dim=4, out_dim=6)
    p = att.init(jax.random.PRNGKey(2), q, frames)
    c, w = att.apply(p, q, frames)
    assert c.shape == (2, 3, 6) and c.dtype == jnp.float32
    assert w.shape == (2, 3, 2, 12)
    np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-5)
    mask = jnp.arange(12)[None, :].repeat(2, 0) < 5
    _, wm = att.apply(p, q, frames, mask)
    assert float(jnp.abs(wm[..., 5:]).max()) == 0.0


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("use_cross_attention", [True, False])
def test_csc_model_outputs(tiny_config, dtype, use_cross_attention):
    c = tiny_config
    c.dtype = dtype
    c.model.use_cross_attention = use_cross_attention
    model = model_from_config(c)
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 3, 800)) * 0.1
    params = model.init(jax.random.PRNGKey(1), x)["params"]
    # Parameters stay float32 whatever the compute dtype.
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(params))
    out = model.apply({"params": params}, x)
    f = num_frames(800, c.model.enc_kernel)
    assert out["global"].shape == (2, 3, c.model.speaker_dim)
    assert out["frames"].shape == (2, 3, f, c.model.speaker_dim)
    assert out["estimate"].shape == (2, 3, 800)
    assert out["target_weights"].shape == (2, 3, f)
    for v in out.values():
        assert v.dtype == jnp.float32
        assert bool(jnp.all(jnp.isfinite(v)))
    w = out["target_weights"]
    assert float(w.min()) >= 0.0 and float(w.max()) <= 1.0 + 1e-3
    emb = model.apply({"params": params}, x[:, 0], method=model.embed)
    assert emb.shape == (2, c.model.speaker_dim)
    np.testing.assert_allclose(jnp.linalg.norm(emb, axis=-1), 1.0, rtol=1e-3)
    vec = model.apply({"params": params}, x[:, 0], method=model.global_vectors)
    ext = model.apply({"params": params}, x[:, 1], vec, method=model.extract)
    assert ext.shape == (2, 800) and ext.dtype == jnp.float32


def test_cross_attention_conditions_interact(tiny_config):
    """With cross-attention, condition j's frames change condition k's global vector."""
    model = model_from_config(tiny_config)
    x = jax.random.normal(jax.random.PRNGKey(0), (1, 2, 800)) * 0.1
    params = model.init(jax.random.PRNGKey(1), x)["params"]
    c1 = model.apply({"params": params}, x)["global"]
    x2 = x.at[:, 1].set(jax.random.normal(jax.random.PRNGKey(5), (1, 800)) * 0.1)
    c2 = model.apply({"params": params}, x2)["global"]
    assert float(jnp.abs(c1[:, 0] - c2[:, 0]).max()) > 1e-6


def test_model_gradients_finite_on_silence(tiny_config):
    model = model_from_config(tiny_config)
    x = jnp.zeros((2, 2, 800))
    params = model.init(jax.random.PRNGKey(1), x)["params"]

    def loss(p):
        out = model.apply({"params": p}, x)
        return jnp.sum(out["global"] ** 2) + jnp.sum(out["estimate"] ** 2)

    grads = jax.jit(jax.grad(loss))(params)  # jitted: op-by-op it took about a minute
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))


@pytest.mark.parametrize("filters,kernel", [(16, 8), (64, 32), (256, 16)])
def test_identity_init_encoder_decoder_reconstruct(filters, kernel):
    """decoder(encoder(x)) == x at initialisation, except the first and last hop (covered by
    one frame only, so they come back at half amplitude)."""
    x = jax.random.normal(jax.random.PRNGKey(0), (3, 40 * kernel))
    enc = WaveformEncoder(filters, kernel, identity_init=True)
    dec = WaveformDecoder(kernel, identity_init=True)
    pe = enc.init(jax.random.PRNGKey(1), x)
    feats = enc.apply(pe, x)
    pd = dec.init(jax.random.PRNGKey(2), feats, x.shape[-1])
    y = dec.apply(pd, feats, x.shape[-1])
    hop = kernel // 2
    np.testing.assert_allclose(y[:, hop:-hop], x[:, hop:-hop], atol=1e-5)
    np.testing.assert_allclose(y[:, :hop], x[:, :hop] / 2, atol=1e-5)
    # The random default is no such pair.
    pe0, pd0 = WaveformEncoder(filters, kernel).init(jax.random.PRNGKey(1), x), pd
    pd0 = WaveformDecoder(kernel).init(jax.random.PRNGKey(2), feats, x.shape[-1])
    y0 = WaveformDecoder(kernel).apply(
        pd0, WaveformEncoder(filters, kernel).apply(pe0, x), 40 * kernel
    )
    assert float(jnp.max(jnp.abs(y0[:, hop:-hop] - x[:, hop:-hop]))) > 0.1


def test_identity_init_model_extracts_the_mixture_before_training(tiny_config):
    c = tiny_config
    c.model.identity_init = True
    model = model_from_config(c)
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 3, 800))
    params = model.init(jax.random.PRNGKey(1), x)["params"]
    est = model.apply({"params": params}, x)["estimate"]
    hop = c.model.enc_kernel // 2
    # Constant mask 0.5 over a perfect-reconstruction pair: half the mixture.
    np.testing.assert_allclose(est[..., hop:-hop], 0.5 * x[..., hop:-hop], atol=1e-5)


def test_identity_init_needs_enough_filters():
    from csc_jax.config import ConfigError, base_config, validate_config
    from csc_jax.models.encoder import tight_frame

    q = tight_frame(64, 16)
    np.testing.assert_allclose(q.T @ q, np.eye(16), atol=1e-5)
    c = base_config()
    c.model.frontend = "waveform"  # the STFT front end inverts exactly without it
    c.model.identity_init = True
    c.model.enc_filters, c.model.enc_kernel = 48, 32
    with pytest.raises(ConfigError, match="model.identity_init"):
        validate_config(c)
    with pytest.raises(ValueError, match="enc_filters >= 2"):
        tight_frame(48, 32)


def test_run_protocol_rejects_an_unknown_scoring_mode():
    from csc_jax.evaluation import verification

    with pytest.raises(ValueError, match="system 'x': scoring 'attention'"):
        verification.score_systems(
            [verification.System("x", None, "attention")], None, [], extraction_trials=None
        )
