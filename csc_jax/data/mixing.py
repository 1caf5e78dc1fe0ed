"""On-device dynamic mixing with jax.random: x = s + i + n per interfering condition.

Everything is per example and keyed by the example's *global* index, so the same global
batch gives the same mixtures whether it runs on one device, a sharded mesh or pmap.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

_EPS = 1e-8


def rms(x: jnp.ndarray) -> jnp.ndarray:
    """Root mean square over the last axis: (..., T) -> (..., 1) float32."""
    x = x.astype(jnp.float32)
    return jnp.sqrt(jnp.mean(jnp.square(x), axis=-1, keepdims=True) + _EPS)


def scale_to_ratio(reference: jnp.ndarray, other: jnp.ndarray, ratio_db) -> jnp.ndarray:
    """Scale ``other`` so that 10 log10(P(reference) / P(other)) = ratio_db.

    Args:
      reference, other: (..., T).
      ratio_db: scalar or (..., 1) array.
    """
    gain = rms(reference) / rms(other) * jnp.power(10.0, -jnp.asarray(ratio_db) / 20.0)
    return other.astype(jnp.float32) * gain


def colored_noise(key: jax.Array, shape: tuple[int, ...], exponent) -> jnp.ndarray:
    """Gaussian noise with power spectrum ~ 1/f**exponent (0 white, 1 pink, 2 brown).

    Args:
      key: PRNG key.
      shape: (..., T).
      exponent: scalar or (..., 1) array of spectral exponents.

    Returns:
      (..., T) float32 noise with unit RMS.
    """
    t = shape[-1]
    white = jax.random.normal(key, shape, jnp.float32)
    spec = jnp.fft.rfft(white, axis=-1)
    freqs = jnp.maximum(jnp.arange(spec.shape[-1], dtype=jnp.float32), 1.0)
    spec = spec * jnp.power(freqs, -jnp.asarray(exponent, jnp.float32) / 2.0)
    noise = jnp.fft.irfft(spec, n=t, axis=-1)
    return noise / rms(noise)


def mix_example(
    key: jax.Array,
    target: jnp.ndarray,
    interferer: jnp.ndarray,
    *,
    sir_db: tuple[float, float],
    snr_db: tuple[float, float],
    noise_prob: float,
) -> dict[str, jnp.ndarray]:
    """Mix one target under its K interfering conditions.

    Args:
      key: PRNG key of this example.
      target: (K, T) clean crops of one utterance.
      interferer: (K, T) crops of other utterances.
      sir_db: (low, high) uniform range of target-to-interferer ratio.
      snr_db: (low, high) uniform range of target-to-noise ratio.
      noise_prob: probability that a condition also gets noise.

    Returns:
      dict of float32 arrays: 'mixture' (K, T) and its components 'target', 'interference',
      'noise' (K, T) (all scaled by the same normalising gain, so they sum to the mixture),
      'sir' (K,), 'snr' (K,) (+inf when no noise).
    """
    k = target.shape[0]
    k_sir, k_snr, k_use, k_exp, k_noise = jax.random.split(key, 5)
    sir = jax.random.uniform(k_sir, (k, 1), minval=sir_db[0], maxval=sir_db[1])
    snr = jax.random.uniform(k_snr, (k, 1), minval=snr_db[0], maxval=snr_db[1])
    use_noise = jax.random.bernoulli(k_use, noise_prob, (k, 1))
    exponent = jax.random.uniform(k_exp, (k, 1), minval=0.0, maxval=2.0)
    target = target.astype(jnp.float32)
    interference = scale_to_ratio(target, interferer, sir)
    noise = scale_to_ratio(target, colored_noise(k_noise, target.shape, exponent), snr)
    noise = jnp.where(use_noise, noise, 0.0)
    mixture = target + interference + noise
    # A fixed mixture level keeps the encoder's input scale stable; SI-SNR is scale-free.
    gain = 0.1 / rms(mixture)
    return {
        "mixture": mixture * gain,
        "target": target * gain,
        "interference": interference * gain,
        "noise": noise * gain,
        "sir": sir[:, 0],
        "snr": jnp.where(use_noise, snr, jnp.inf)[:, 0],
    }


def mix_batch(
    key: jax.Array,
    batch: dict[str, jnp.ndarray],
    example_ids: jnp.ndarray,
    mixing_config,
) -> dict[str, jnp.ndarray]:
    """Mix a batch; each example's randomness is ``fold_in(key, example_id)``.

    Args:
      key: the step's PRNG key (same on every device).
      batch: {'target': (B, K, T), 'interferer': (B, K, T)} clean crops.
      example_ids: (B,) int32 global indices of these examples in the global batch.
      mixing_config: ``config.mixing`` (sir_db, snr_db, noise_prob).

    Returns:
      dict of (B, K, T) 'mixture', 'target', 'interference', 'noise' and (B, K) 'sir', 'snr';
      float32.
    """
    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(example_ids)
    fn = lambda k, t, i: mix_example(  # noqa: E731
        k,
        t,
        i,
        sir_db=tuple(mixing_config.sir_db),
        snr_db=tuple(mixing_config.snr_db),
        noise_prob=float(mixing_config.noise_prob),
    )
    return jax.vmap(fn)(keys, batch["target"], batch["interferer"])
