"""Pure ``jax.numpy`` losses for Contrastive Separative Coding (CSC).

This module deliberately imports only ``jax`` and the standard library (no Flax, no optax) so it
can be dropped into any JAX code base. Every function

* works under ``jax.jit``, ``jax.vmap`` and ``jax.grad``;
* casts its floating inputs to float32 before any reduction (bfloat16 / float16 in, float32 out);
* returns finite values *and* finite gradients on all-zero (silent) inputs and on fully masked
  rows. Norms use ``sqrt(sum(x**2) + eps)`` and divisions by data-dependent counts are
  ``where``-guarded, because ``sqrt`` and ``x / 0`` have NaN derivatives at zero even when the
  forward value is masked away.

Shape validation happens at trace time (shapes are static), so errors are raised by ``jit`` with a
message naming the offending shapes rather than surfacing later as broadcasting failures.
"""

import itertools
import math

import jax
import jax.numpy as jnp

__all__ = [
    "cross_attention_pool",
    "csc_loss",
    "masked_mean",
    "nt_xent",
    "pit_si_snr_loss",
    "si_snr",
    "weighted_pool",
]

_REDUCTIONS = ("mean", "none")
# Factorial growth of the permutation table: 8! = 40320 rows is already far past any real use.
_MAX_PIT_SOURCES = 8


def _f32(x: jax.typing.ArrayLike) -> jax.Array:
    """Returns ``x`` as a float32 array (reductions in bf16/fp16 lose too many mantissa bits)."""
    return jnp.asarray(x).astype(jnp.float32)


def _check_reduction(reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _check_temperature(temperature) -> None:
    # A traced temperature cannot be checked here; a Python number can, and a non-positive one
    # would silently flip the sign of every similarity.
    if isinstance(temperature, (int, float)) and not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")


def _safe_normalize(x: jax.Array, eps: float) -> jax.Array:
    """``x / sqrt(sum(x**2, -1) + eps)``: finite value and gradient for ``x == 0``."""
    return x * jax.lax.rsqrt(jnp.sum(jnp.square(x), axis=-1, keepdims=True) + eps)


def masked_mean(
    x: jax.typing.ArrayLike,
    mask: jax.typing.ArrayLike,
    axis: int | tuple[int, ...] | None,
    *,
    eps: float = 1e-8,
) -> jax.Array:
    """Mean of ``x`` over ``axis`` counting only the entries where ``mask`` is set.

    ``out = sum(m * x, axis) / max(sum(m, axis), eps)`` with ``m = mask`` as float32.

    Args:
        x: any shape, any float dtype.
        mask: broadcastable to ``x.shape``; bool or float (1 = valid, 0 = ignored; float values
            act as weights). Values of ``x`` at ``mask == 0`` never reach the output or the
            gradient, even if they are NaN/Inf (they are zeroed with ``where`` first).
        axis: axis or axes to reduce (``None`` = all).
        eps: lower bound on the count, so a fully masked slice gives ``0 / eps = 0``.

    Returns:
        float32 array of ``x.shape`` with ``axis`` removed. Fully masked slices give 0 with
        finite (zero) gradients.
    """
    x = _f32(x)
    m = jnp.broadcast_to(_f32(mask), x.shape)
    num = jnp.sum(jnp.where(m != 0, x, 0.0) * m, axis=axis)
    den = jnp.sum(m, axis=axis)
    return num / jnp.maximum(den, eps)


def si_snr(
    estimate: jax.typing.ArrayLike,
    reference: jax.typing.ArrayLike,
    *,
    mask: jax.typing.ArrayLike | None = None,
    eps: float = 1e-8,
) -> jax.Array:
    """Scale-invariant signal-to-noise ratio in dB.

    With ``x`` = estimate and ``s`` = reference, both made zero-mean over the valid samples::

        s_target = <x, s> / (||s||^2 + eps) * s
        e        = x - s_target
        SI-SNR   = 10 * log10((||s_target||^2 + eps) / (||e||^2 + eps))

    Args:
        estimate: ``(..., T)`` any float dtype.
        reference: ``(..., T)``, broadcastable against ``estimate`` (so a pairwise matrix can be
            built with ``estimate[:, :, None]`` / ``reference[:, None, :]``).
        mask: ``(..., T)`` bool/float or ``None``; nonzero = valid sample. Invalid samples
            (padding) are excluded from the means and the energies, and may hold any value,
            NaN included.
        eps: stabiliser; silent or fully masked inputs give ``10 log10(eps/eps) = 0`` dB with
            finite gradients (no square roots are taken).

    Returns:
        float32 ``(...,)``: broadcast of the leading dims.
    """
    estimate = _f32(estimate)
    reference = _f32(reference)
    if estimate.ndim == 0 or reference.ndim == 0:
        raise ValueError(
            f"si_snr needs (..., T) arrays, got estimate {estimate.shape}, reference "
            f"{reference.shape}"
        )
    if estimate.shape[-1] != reference.shape[-1]:
        raise ValueError(
            f"si_snr: estimate and reference must have the same length T, got estimate "
            f"{estimate.shape} and reference {reference.shape}"
        )
    shape = jnp.broadcast_shapes(estimate.shape, reference.shape)
    if mask is None:
        valid = jnp.ones(shape, dtype=bool)
    else:
        mask = jnp.asarray(mask)
        if mask.ndim == 0 or mask.shape[-1] != shape[-1]:
            raise ValueError(
                f"si_snr: mask must be (..., T) with T={shape[-1]}, got mask {mask.shape}"
            )
        shape = jnp.broadcast_shapes(shape, mask.shape)
        valid = jnp.broadcast_to(mask.astype(bool), shape)
    estimate = jnp.broadcast_to(estimate, shape)
    reference = jnp.broadcast_to(reference, shape)

    # Zero-mean over valid samples only; padding is zeroed (not just down-weighted) so NaN/Inf
    # garbage cannot leak into the dot products or their gradients.
    est = jnp.where(valid, estimate - masked_mean(estimate, valid, -1)[..., None], 0.0)
    ref = jnp.where(valid, reference - masked_mean(reference, valid, -1)[..., None], 0.0)

    dot = jnp.sum(est * ref, axis=-1, keepdims=True)
    ref_energy = jnp.sum(jnp.square(ref), axis=-1, keepdims=True)
    s_target = dot / (ref_energy + eps) * ref
    noise = est - s_target
    ratio = (jnp.sum(jnp.square(s_target), axis=-1) + eps) / (
        jnp.sum(jnp.square(noise), axis=-1) + eps
    )
    return 10.0 * jnp.log10(ratio)


def pit_si_snr_loss(
    estimates: jax.typing.ArrayLike,
    references: jax.typing.ArrayLike,
    *,
    eps: float = 1e-8,
) -> tuple[jax.Array, jax.Array]:
    """Permutation-invariant negative SI-SNR (utterance-level PIT).

    The pairwise matrix ``P[b, i, j] = si_snr(est[b, i], ref[b, j])`` is built once; each
    permutation ``pi`` from the static table ``itertools.permutations(range(n_src))`` is scored
    by gathering ``P[b, i, pi(i)]``, so the cost is ``n_src**2`` SI-SNRs plus ``n_src!`` cheap
    gathers rather than ``n_src * n_src!`` SI-SNRs::

        loss = mean_b [ - max_pi (1/n_src) sum_i P[b, i, pi(i)] ]

    Args:
        estimates: ``(batch, n_src, T)`` any float dtype.
        references: ``(batch, n_src, T)``.
        eps: passed to :func:`si_snr`.

    Returns:
        ``(loss, perm)``: ``loss`` float32 scalar; ``perm`` int32 ``(batch, n_src)`` with
        ``perm[b, i]`` = index of the reference assigned to estimate ``i`` (so
        ``references[b, perm[b]]`` is aligned with ``estimates[b]``). ``perm`` carries no
        gradient.
    """
    estimates = _f32(estimates)
    references = _f32(references)
    if estimates.ndim != 3 or estimates.shape != references.shape:
        raise ValueError(
            "pit_si_snr_loss needs estimates and references of the same shape "
            f"(batch, n_src, T), got estimates {estimates.shape} and references "
            f"{references.shape}"
        )
    n_src = estimates.shape[1]
    if not 1 <= n_src <= _MAX_PIT_SOURCES:
        raise ValueError(
            f"pit_si_snr_loss supports 1 <= n_src <= {_MAX_PIT_SOURCES} (the permutation table "
            f"has n_src! rows), got n_src={n_src}"
        )
    pair = si_snr(estimates[:, :, None, :], references[:, None, :, :], eps=eps)  # (B, n, n)
    perms = jnp.asarray(list(itertools.permutations(range(n_src))), dtype=jnp.int32)  # (P, n)
    # scores[b, p] = mean_i pair[b, i, perms[p, i]]
    scores = jnp.mean(pair[:, jnp.arange(n_src)[None, :], perms], axis=-1)  # (B, P)
    best = jnp.argmax(scores, axis=-1)
    loss = -jnp.mean(jnp.max(scores, axis=-1))
    return loss, perms[best]


def weighted_pool(
    frames: jax.typing.ArrayLike,
    weights: jax.typing.ArrayLike,
    *,
    eps: float = 1e-6,
) -> jax.Array:
    """Weighted average of frames over time.

    ``out[..., d] = sum_t w[..., t] f[..., t, d] / (sum_t w[..., t] + eps)``

    Args:
        frames: ``(..., T, D)`` any float dtype.
        weights: ``(..., T)`` non-negative (not checked: it would need a host sync). All-zero
            weights give a zero vector with finite gradients thanks to ``eps``.
        eps: added to the weight sum.

    Returns:
        float32 ``(..., D)``.
    """
    frames = _f32(frames)
    weights = _f32(weights)
    if frames.ndim < 2 or weights.ndim < 1 or weights.shape[-1] != frames.shape[-2]:
        raise ValueError(
            f"weighted_pool needs frames (..., T, D) and weights (..., T), got frames "
            f"{frames.shape} and weights {weights.shape}"
        )
    num = jnp.sum(weights[..., None] * frames, axis=-2)
    den = jnp.sum(weights, axis=-1)[..., None] + eps
    return num / den


def cross_attention_pool(
    query: jax.typing.ArrayLike,
    keys: jax.typing.ArrayLike,
    values: jax.typing.ArrayLike,
    mask: jax.typing.ArrayLike | None = None,
) -> tuple[jax.Array, jax.Array]:
    """Multi-head scaled dot-product attention pooling (one query per head).

    ``a[..., h, s] = softmax_s( <q[..., h, :], k[..., s, h, :]> / sqrt(dk) )`` over the valid
    positions ``s`` only, and ``pooled[..., h, :] = sum_s a[..., h, s] v[..., s, h, :]``.

    Args:
        query: ``(..., H, dk)``.
        keys: ``(..., S, H, dk)``.
        values: ``(..., S, H, dv)``.
        mask: ``(..., S)`` bool (True = attend) or ``None``. Masked keys/values are zeroed before
            use, so padding may hold NaN/Inf without poisoning the output or the gradients.

    Returns:
        ``(pooled, weights)``: float32 ``(..., H, dv)`` and float32 ``(..., H, S)``. A fully
        masked row gives ``pooled = 0`` and ``weights = 0`` with finite gradients (the softmax
        denominator is guarded instead of dividing ``0 / 0``).
    """
    query = _f32(query)
    keys = _f32(keys)
    values = _f32(values)
    if (
        query.ndim < 2
        or keys.ndim < 3
        or values.ndim < 3
        or keys.shape[-2:] != query.shape[-2:]
        or values.shape[-3:-1] != keys.shape[-3:-1]
    ):
        raise ValueError(
            "cross_attention_pool needs query (..., H, dk), keys (..., S, H, dk), values "
            f"(..., S, H, dv); got query {query.shape}, keys {keys.shape}, values {values.shape}"
        )
    dk = query.shape[-1]
    if mask is None:
        mask = jnp.ones(keys.shape[:-2], dtype=bool)
    else:
        mask = jnp.asarray(mask).astype(bool)
        if mask.ndim < 1 or mask.shape[-1] != keys.shape[-3]:
            raise ValueError(
                f"cross_attention_pool: mask must be (..., S) with S={keys.shape[-3]}, got mask "
                f"{mask.shape}"
            )
    keys = jnp.where(mask[..., None, None], keys, 0.0)
    values = jnp.where(mask[..., None, None], values, 0.0)

    logits = jnp.einsum("...hd,...shd->...hs", query, keys) / math.sqrt(dk)
    valid = jnp.broadcast_to(mask[..., None, :], logits.shape)
    # Shift by the max over valid logits for stability (softmax is shift invariant, hence the
    # stop_gradient). Rows with no valid entry use shift 0 so no -inf ever enters arithmetic.
    row_max = jnp.max(jnp.where(valid, logits, -jnp.inf), axis=-1, keepdims=True)
    row_max = jax.lax.stop_gradient(jnp.where(jnp.isfinite(row_max), row_max, 0.0))
    unnorm = jnp.where(valid, jnp.exp(jnp.where(valid, logits - row_max, 0.0)), 0.0)
    total = jnp.sum(unnorm, axis=-1, keepdims=True)
    weights = unnorm / jnp.where(total > 0, total, 1.0)
    pooled = jnp.einsum("...hs,...shd->...hd", weights, values)
    return pooled, weights


def csc_loss(
    global_vec: jax.typing.ArrayLike,
    target_stream: jax.typing.ArrayLike,
    interference_stream: jax.typing.ArrayLike,
    *,
    temperature: float = 0.1,
    reduction: str = "mean",
    eps: float = 1e-8,
) -> jax.Array:
    """Contrastive separative coding loss (Wang et al., ICASSP 2021), free of negative sampling.

    For each target utterance ``b`` the model sees ``K`` conditions (mixtures). ``c[b, k]`` is the
    global speaker vector pooled from condition ``k``; ``e+[b, j]`` / ``e-[b, j]`` are the
    separated target and interference streams of condition ``j``. For every ``(b, k, j)``::

        s+ = cos(c[b, k], e+[b, j]) / tau
        s- = cos(c[b, k], e-[b, j]) / tau
        l[b, k, j] = -log( exp(s+) / (exp(s+) + exp(s-)) ) = softplus(s- - s+)

    with ``cos(a, b) = <a, b> / (sqrt(||a||^2 + eps) sqrt(||b||^2 + eps))`` so zero vectors give
    cosine 0 (loss ``log 2``) with finite gradients.

    The *only* contrast for the positive pair is the interfering stream separated from the same
    mixture: no other batch items, no memory queue, no sampled negatives. The negative is
    produced by the separation itself, which is why the loss is "free from negative sampling"
    and why its value per example does not depend on the batch composition. It is a two-way
    (one positive, one negative) NCE / InfoNCE objective, so ``I(c; e+) >= log 2 - L >= -L``:
    ``-L`` is a lower bound on the mutual information between the global vector and the target
    stream in the two-way NCE sense.

    Properties: ``L = log 2`` exactly when ``e+ == e-``; ``L -> 0`` as ``tau -> 0`` when ``c``
    aligns with ``e+`` and points away from ``e-``.

    Args:
        global_vec: ``c``, ``(B, K, D)`` (more generally ``(..., K, D)``), any float dtype.
        target_stream: ``e+``, ``(B, J, D)``: the streams of J of the conditions (usually
            J = K; fewer is cheaper when the streams are computed per condition).
        interference_stream: ``e-``, the same shape as ``target_stream``.
        temperature: ``tau > 0``.
        reduction: ``"mean"`` -> float32 scalar, mean over ``b, k, j``; ``"none"`` -> float32
            ``(B,)`` (``(...,)``), mean over ``k, j`` per target.
        eps: safe-norm stabiliser.

    Returns:
        float32 loss, see ``reduction``.
    """
    _check_reduction(reduction)
    _check_temperature(temperature)
    c = _f32(global_vec)
    pos = _f32(target_stream)
    neg = _f32(interference_stream)
    if (
        c.ndim < 2
        or pos.shape != neg.shape
        or pos.ndim != c.ndim
        or pos.shape[:-2] != c.shape[:-2]
        or pos.shape[-1] != c.shape[-1]
    ):
        raise ValueError(
            "csc_loss needs global_vec (B, K, D) and target_stream / interference_stream of one "
            f"shape (B, J, D); got {c.shape}, {pos.shape}, {neg.shape}"
        )
    c = _safe_normalize(c, eps)
    s_pos = jnp.einsum("...kd,...jd->...kj", c, _safe_normalize(pos, eps)) / temperature
    s_neg = jnp.einsum("...kd,...jd->...kj", c, _safe_normalize(neg, eps)) / temperature
    per_pair = jax.nn.softplus(s_neg - s_pos)  # (..., K, J)
    if reduction == "none":
        return jnp.mean(per_pair, axis=(-2, -1))
    return jnp.mean(per_pair)


def nt_xent(
    z1: jax.typing.ArrayLike,
    z2: jax.typing.ArrayLike,
    *,
    temperature: float = 0.1,
    reduction: str = "mean",
    eps: float = 1e-8,
) -> jax.Array:
    """SimCLR NT-Xent loss with in-batch negatives (the baseline CSC avoids).

    With ``z = concat(z1, z2)`` (``2B`` rows, L2-normalised with a safe norm) and
    ``sim[a, n] = <z_a, z_n> / tau``, the positive of anchor ``a`` is its other view
    ``p(a) = (a + B) mod 2B`` and::

        l_a = -log( exp(sim[a, p(a)]) / sum_{n != a} exp(sim[a, n]) )

    i.e. a ``2B x 2B`` similarity with the self-similarity masked out; the ``2B - 2`` other rows
    are the negatives.

    Args:
        z1: ``(B, D)`` first view, any float dtype. ``B >= 2`` (otherwise there is no negative).
        z2: ``(B, D)`` second view.
        temperature: ``tau > 0``.
        reduction: ``"mean"`` -> float32 scalar; ``"none"`` -> float32 ``(2B,)`` per-anchor
            losses (rows ``0..B-1`` anchor on ``z1``, rows ``B..2B-1`` on ``z2``).
        eps: safe-norm stabiliser.

    Returns:
        float32 loss, see ``reduction``.
    """
    _check_reduction(reduction)
    _check_temperature(temperature)
    z1 = _f32(z1)
    z2 = _f32(z2)
    if z1.ndim != 2 or z1.shape != z2.shape:
        raise ValueError(
            f"nt_xent needs z1, z2 of the same shape (B, D), got {z1.shape}, {z2.shape}"
        )
    batch = z1.shape[0]
    if batch < 2:
        raise ValueError(f"nt_xent needs batch size B >= 2 to have negatives, got B={batch}")
    z = _safe_normalize(jnp.concatenate([z1, z2], axis=0), eps)
    sim = z @ z.T / temperature  # (2B, 2B)
    idx = jnp.arange(2 * batch)
    positive = sim[idx, (idx + batch) % (2 * batch)]
    not_self = ~jnp.eye(2 * batch, dtype=bool)
    per_anchor = jax.nn.logsumexp(sim, axis=-1, where=not_self) - positive
    if reduction == "none":
        return per_anchor
    return jnp.mean(per_anchor)
