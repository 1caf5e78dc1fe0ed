"""The time-frequency front end: STFT / inverse STFT, features, and the 'stft' CSC model."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import make_tiny_config

from csc_jax import losses
from csc_jax.config import ConfigError, validate_config
from csc_jax.models import model_from_config, stft
from csc_jax.models.csc import frame_energy


def stft_config(cache, **overrides):
    """The tiny test config with the STFT front end at 16 kHz (window 20 ms, hop 10 ms)."""
    base = {
        "model.frontend": "stft",
        "data.sample_rate": 16000,
        "model.stft_window": 320,
        "model.stft_hop": 160,
    }
    return make_tiny_config(cache, **{**base, **overrides})


@pytest.mark.parametrize(
    "window,hop,t", [(320, 160, 16000), (512, 128, 1000), (400, 100, 16001), (320, 160, 17)]
)
def test_istft_inverts_stft(window, hop, t):
    x = np.random.default_rng(0).standard_normal((2, t)).astype(np.float32)
    spec = stft.stft(jnp.asarray(x), window, hop)
    assert spec.shape == (2, stft.num_frames(t, window, hop), stft.num_bins(window))
    y = stft.istft(spec, window, hop, t)
    np.testing.assert_allclose(np.asarray(y), x, atol=1e-5)


def test_stft_matches_a_numpy_reference():
    """Frame f is the Hann-windowed signal starting at f * hop - (window - hop), zero-padded."""
    window, hop, t = 64, 16, 200
    x = np.random.default_rng(1).standard_normal(t).astype(np.float32)
    padded = np.concatenate([np.zeros(window - hop), x, np.zeros(window)])
    w = stft.hann(window)
    f = stft.num_frames(t, window, hop)
    want = np.stack([np.fft.rfft(padded[i * hop : i * hop + window] * w) for i in range(f)])
    got = np.asarray(stft.stft(jnp.asarray(x), window, hop))
    np.testing.assert_allclose(got, want, atol=1e-4)


@pytest.mark.parametrize("window,hop", [(320, 0), (320, 200), (160, 160), (303, 101)])
def test_window_hop_pairs_that_cannot_work_are_refused(window, hop, shared_cache):
    with pytest.raises(ValueError, match="stft_window"):
        stft.check_window(window, hop)
    config = stft_config(shared_cache, **{"model.stft_window": window, "model.stft_hop": hop})
    with pytest.raises(ConfigError, match="model.stft_(window|hop)"):
        validate_config(config)


def test_log_power_is_level_invariant():
    x = np.random.default_rng(2).standard_normal((1, 4000)).astype(np.float32) * 0.1
    feats = [
        stft.log_power(stft.stft(jnp.asarray(a * x), 320, 160), jnp.asarray(a * x))
        for a in (1.0, 30.0)
    ]
    np.testing.assert_allclose(np.asarray(feats[0]), np.asarray(feats[1]), atol=1e-3)
    silent = stft.log_power(stft.stft(jnp.zeros((1, 4000)), 320, 160), jnp.zeros((1, 4000)))
    assert np.isfinite(np.asarray(silent)).all()


def test_frame_energy_frames_as_the_model(shared_cache):
    config = stft_config(shared_cache)
    model = model_from_config(config)
    x = jax.random.normal(jax.random.key(0), (2, 3, 1600))
    params = model.init(jax.random.key(1), x)["params"]
    out = model.apply({"params": params}, x)
    assert frame_energy(x, config).shape == out["target_weights"].shape
    assert out["frames"].shape[2] == stft.num_frames(1600, 320, 160)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_untrained_stft_model_returns_the_mixture(shared_cache, dtype):
    """The mask starts at 0.5 everywhere: the estimate is half the mixture, SI-SNRi 0 dB."""
    config = stft_config(shared_cache, dtype=dtype)
    model = model_from_config(config)
    x = jax.random.normal(jax.random.key(0), (2, 3, 1600))
    params = model.init(jax.random.key(1), x)["params"]
    out = model.apply({"params": params}, x)
    assert out["estimate"].shape == x.shape and out["estimate"].dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(out["estimate"]), 0.5 * np.asarray(x), atol=1e-4)
    np.testing.assert_allclose(np.asarray(out["target_weights"]), 0.5, atol=1e-3)
    assert out["global"].shape == (2, 3, config.model.speaker_dim)
    assert np.isfinite(np.asarray(out["global"])).all()


def test_stft_model_learns_to_extract_a_louder_target(shared_cache):
    """A few steps of the separation loss move the mask: the estimate beats the mixture."""
    import optax

    config = stft_config(shared_cache)
    model = model_from_config(config)
    rng = np.random.default_rng(3)
    t = 1600
    n = np.arange(t) / 16000
    target = np.sin(2 * np.pi * 440 * n)[None, None] * np.ones((2, 2, 1))
    noise = 0.5 * rng.standard_normal((2, 2, t))
    target, mix = jnp.asarray(target, jnp.float32), jnp.asarray(target + noise, jnp.float32)
    params = model.init(jax.random.key(0), mix)["params"]
    tx = optax.adam(1e-2)
    opt = tx.init(params)

    def loss_fn(p):
        return -jnp.mean(losses.si_snr(model.apply({"params": p}, mix)["estimate"], target))

    @jax.jit
    def step(p, o):
        value, grads = jax.value_and_grad(loss_fn)(p)
        updates, o = tx.update(grads, o)
        return optax.apply_updates(p, updates), o, value

    first = float(loss_fn(params))
    for _ in range(30):
        params, opt, _ = step(params, opt)
    assert float(loss_fn(params)) < first - 3.0  # at least 3 dB better than the mixture


def test_stft_gradients_with_remat_equal_those_without(shared_cache):
    """The real CSC objective through the STFT front end: 'block' remat changes nothing."""
    from test_remat import _loss_and_grads, _mixed

    plain = stft_config(shared_cache, **{"model.repeats": 2})
    mixed = _mixed(plain)
    params = model_from_config(plain).init(jax.random.key(1), mixed["mixture"][:1])["params"]
    loss0, grads0 = _loss_and_grads(plain, params, mixed)
    remat = stft_config(shared_cache, **{"model.repeats": 2, "model.remat": "block"})
    loss1, grads1 = _loss_and_grads(remat, params, mixed)
    np.testing.assert_allclose(loss1, loss0, rtol=1e-5)
    for g0, g1 in zip(jax.tree.leaves(grads0), jax.tree.leaves(grads1), strict=True):
        np.testing.assert_allclose(g1, g0, rtol=1e-4, atol=1e-6)


def test_stft_run_trains_checkpoints_loads_embeds_and_extracts(shared_cache, tmp_path):
    """train -> orbax checkpoint -> csc_jax.load -> embed / extract at 16 kHz."""
    import csc_jax
    from csc_jax.training import loop

    config = stft_config(shared_cache, **{"train.steps": 2, "eval.validation_every": 0})
    workdir = str(tmp_path / "run")
    loop.train(config, workdir)
    model = csc_jax.load(workdir)
    assert model.sample_rate == 16000 and model.config.model.frontend == "stft"
    rng = np.random.default_rng(0)
    a = (0.1 * rng.standard_normal(16000)).astype(np.float32)
    b = (0.1 * rng.standard_normal(12000)).astype(np.float32)
    emb = np.asarray(model.embed([a, b]))
    assert emb.shape == (2, config.model.speaker_dim)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)
    target = np.asarray(model.extract(a + np.pad(b, (0, 4000)), b))
    assert target.shape == a.shape and np.isfinite(target).all()
