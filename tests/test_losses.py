"""Tests for csc_jax.losses: exact values, invariances, masking, dtype, jit/vmap/grad safety."""

import itertools
import math
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from csc_jax import losses

REPO_ROOT = Path(__file__).resolve().parents[1]
PROPERTY = settings(max_examples=12, deadline=None, derandomize=True)

# Eager JAX compiles every primitive for every new shape; jitting whole functions keeps the file
# fast (one compilation per function and shape). The functions under test are the same.
si_snr = jax.jit(losses.si_snr)
pit = jax.jit(losses.pit_si_snr_loss)
csc = jax.jit(
    lambda c, p, n, tau=0.1, reduction="mean": losses.csc_loss(
        c, p, n, temperature=tau, reduction=reduction
    ),
    static_argnames="reduction",
)
nt_xent = jax.jit(
    lambda z1, z2, tau=0.1, reduction="mean": losses.nt_xent(
        z1, z2, temperature=tau, reduction=reduction
    ),
    static_argnames="reduction",
)
attention = jax.jit(losses.cross_attention_pool)


def _all_finite(tree) -> bool:
    return all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree_util.tree_leaves(tree))


def _noise_at_snr(rng: np.random.Generator, ref: np.ndarray, snr_db: float) -> np.ndarray:
    """Zero-mean white noise with ||ref||^2 / ||noise||^2 = 10^(snr/10)."""
    noise = rng.standard_normal(ref.shape)
    noise -= noise.mean()
    return noise * np.sqrt(np.sum(ref**2) / np.sum(noise**2) / 10 ** (snr_db / 10))


# --------------------------------------------------------------------------------------- si_snr


@pytest.mark.parametrize("snr_db", [-5.0, 0.0, 10.0, 25.0])
def test_si_snr_recovers_known_snr(snr_db):
    rng = np.random.default_rng(0)
    ref = rng.standard_normal(64000)
    ref -= ref.mean()
    est = ref + _noise_at_snr(rng, ref, snr_db)
    got = float(si_snr(est, ref))
    assert got == pytest.approx(snr_db, abs=0.1)


@pytest.mark.parametrize("scale", [0.3, 7.0])
def test_si_snr_is_scale_invariant(scale):
    rng = np.random.default_rng(1)
    ref = jnp.asarray(rng.standard_normal((3, 8000)), jnp.float32)
    est = ref + 0.5 * jnp.asarray(rng.standard_normal((3, 8000)), jnp.float32)
    np.testing.assert_allclose(si_snr(scale * est, ref), si_snr(est, ref), rtol=1e-4, atol=1e-4)


def test_si_snr_is_offset_invariant():
    # Zero-mean step: a DC offset on the estimate is not signal nor noise.
    rng = np.random.default_rng(2)
    ref = jnp.asarray(rng.standard_normal(4000), jnp.float32)
    est = ref + 0.3 * jnp.asarray(rng.standard_normal(4000), jnp.float32)
    np.testing.assert_allclose(si_snr(est + 5.0, ref), si_snr(est, ref), atol=1e-3)


def test_si_snr_mask_ignores_padding_garbage():
    rng = np.random.default_rng(3)
    n_valid, n_total = 5000, 6000
    ref = rng.standard_normal(n_valid).astype(np.float32)
    est = (ref + 0.4 * rng.standard_normal(n_valid)).astype(np.float32)
    expected = si_snr(est, ref)
    mask = np.arange(n_total) < n_valid
    grad_fn = jax.jit(jax.grad(lambda e, r, m: losses.si_snr(e, r, mask=m)))
    for garbage in (
        1e3 * rng.standard_normal(n_total - n_valid),
        np.full(n_total - n_valid, np.nan),
    ):
        est_p = np.concatenate([est, garbage]).astype(np.float32)
        ref_p = np.concatenate([ref, -garbage]).astype(np.float32)
        got = si_snr(est_p, ref_p, mask=mask)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)
        grad = grad_fn(est_p, ref_p, mask)
        assert _all_finite(grad)
        assert np.all(np.asarray(grad)[n_valid:] == 0)
    # Float masks behave like boolean ones.
    np.testing.assert_allclose(
        si_snr(est_p, ref_p, mask=mask.astype(np.float32)), expected, rtol=1e-5, atol=1e-4
    )
    # Without the mask the garbage must matter, otherwise this test proves nothing.
    assert not np.isclose(float(si_snr(est_p, ref_p)), float(expected), atol=1e-2)


def test_si_snr_silent_and_fully_masked_are_finite():
    zeros = jnp.zeros((2, 3, 160))
    fn = jax.jit(
        jax.value_and_grad(lambda e, r, m: losses.si_snr(e, r, mask=m).sum(), argnums=(0, 1))
    )
    value, grads = fn(zeros, zeros, jnp.ones((2, 3, 160), bool))
    assert _all_finite((value, grads)) and float(value) == 0.0
    x = jnp.ones((2, 3, 160))
    value, grads = fn(x, 2 * x, jnp.zeros((2, 3, 160), bool))
    assert _all_finite((value, grads))


def test_si_snr_bfloat16_returns_float32():
    rng = np.random.default_rng(4)
    ref = jnp.asarray(rng.standard_normal((2, 4000)), jnp.bfloat16)
    est = ref + jnp.asarray(0.3 * rng.standard_normal((2, 4000)), jnp.bfloat16)
    out = si_snr(est, ref)
    assert out.dtype == jnp.float32 and out.shape == (2,)
    assert _all_finite(out)
    np.testing.assert_allclose(out, si_snr(est.astype(jnp.float32), ref), atol=1e-3)


def test_si_snr_rejects_length_mismatch():
    with pytest.raises(ValueError, match="same length T"):
        losses.si_snr(jnp.zeros((2, 10)), jnp.zeros((2, 11)))
    with pytest.raises(ValueError, match="mask"):
        losses.si_snr(jnp.zeros((2, 10)), jnp.zeros((2, 10)), mask=jnp.ones((2, 9)))


@PROPERTY
@given(seed=st.integers(0, 2**31 - 1), batch=st.integers(1, 3))
def test_si_snr_batch_equals_per_example_and_vmap_equals_loop(seed, batch):
    rng = np.random.default_rng(seed)
    ref = rng.standard_normal((batch, 3, 256)).astype(np.float32)
    est = (ref + rng.uniform(0.05, 2.0) * rng.standard_normal(ref.shape)).astype(np.float32)
    batched = si_snr(est, ref)
    looped = np.stack([[si_snr(est[b, i], ref[b, i]) for i in range(3)] for b in range(batch)])
    np.testing.assert_allclose(batched, looped, rtol=1e-5, atol=1e-4)
    vmapped = jax.jit(jax.vmap(losses.si_snr))(est, ref)
    np.testing.assert_allclose(vmapped, batched, rtol=1e-5, atol=1e-4)


# ----------------------------------------------------------------------------------------- PIT


@pytest.mark.parametrize("n_src", [2, 3])
def test_pit_is_permutation_invariant_and_recovers_perm(n_src):
    rng = np.random.default_rng(10 + n_src)
    batch, length = 4, 2000
    refs = rng.standard_normal((batch, n_src, length)).astype(np.float32)
    # Estimate i is a noisy copy of reference true_perm[b, i].
    true_perm = np.stack([rng.permutation(n_src) for _ in range(batch)])
    est = np.take_along_axis(refs, true_perm[:, :, None], axis=1)
    est = (est + 0.3 * rng.standard_normal(est.shape)).astype(np.float32)

    loss, perm = pit(est, refs)
    assert perm.dtype == jnp.int32 and perm.shape == (batch, n_src)
    np.testing.assert_array_equal(perm, true_perm)
    # Best-permutation loss equals the directly aligned negative SI-SNR.
    aligned = np.take_along_axis(refs, true_perm[:, :, None], axis=1)
    np.testing.assert_allclose(loss, -np.mean(si_snr(est, aligned)), rtol=1e-5)

    for p in itertools.permutations(range(n_src)):
        p = np.asarray(p)
        loss_p, perm_p = pit(est, refs[:, p])
        np.testing.assert_allclose(loss_p, loss, rtol=1e-5, atol=1e-5)
        # refs[:, p][:, perm_p[b, i]] == refs[:, true_perm[b, i]]
        np.testing.assert_array_equal(p[np.asarray(perm_p)], true_perm)


def test_pit_vmap_over_extra_axis_equals_loop():
    rng = np.random.default_rng(14)
    refs = rng.standard_normal((2, 3, 2, 500)).astype(np.float32)
    est = (refs[:, :, ::-1] + 0.5 * rng.standard_normal(refs.shape)).astype(np.float32)
    losses_v, perms_v = jax.jit(jax.vmap(losses.pit_si_snr_loss))(est, refs)
    for i in range(2):
        loss_i, perm_i = pit(est[i], refs[i])
        np.testing.assert_allclose(losses_v[i], loss_i, rtol=1e-5)
        np.testing.assert_array_equal(perms_v[i], perm_i)
    np.testing.assert_array_equal(perms_v, np.broadcast_to([1, 0], (2, 3, 2)))


def test_pit_rejects_bad_shapes():
    with pytest.raises(ValueError, match="same shape"):
        losses.pit_si_snr_loss(jnp.zeros((2, 2, 10)), jnp.zeros((2, 3, 10)))
    with pytest.raises(ValueError, match="n_src"):
        losses.pit_si_snr_loss(jnp.zeros((1, 9, 4)), jnp.zeros((1, 9, 4)))


def test_pit_silent_and_bf16():
    zeros = jnp.zeros((2, 2, 64), jnp.bfloat16)
    fn = jax.jit(jax.value_and_grad(losses.pit_si_snr_loss, has_aux=True))
    (loss, perm), grad = fn(zeros, zeros)
    assert loss.dtype == jnp.float32 and perm.shape == (2, 2)
    assert _all_finite((loss, grad))


# ------------------------------------------------------------------------- masked_mean / pools


def test_masked_mean_counts_only_valid_and_fully_masked_is_zero():
    x = jnp.asarray([[1.0, 2.0, 3.0, jnp.nan], [5.0, 6.0, 7.0, 8.0]])
    mask = jnp.asarray([[1, 1, 1, 0], [0, 0, 0, 0]], bool)
    out = losses.masked_mean(x, mask, -1)
    np.testing.assert_allclose(out, [2.0, 0.0])
    grad = jax.jit(jax.grad(lambda v: losses.masked_mean(v, mask, -1).sum()))(x)
    np.testing.assert_allclose(grad, [[1 / 3, 1 / 3, 1 / 3, 0], [0, 0, 0, 0]], rtol=1e-6)
    assert losses.masked_mean(x.astype(jnp.bfloat16), mask, 1).dtype == jnp.float32


def test_weighted_pool_matches_formula_and_zero_weights():
    rng = np.random.default_rng(20)
    frames = rng.standard_normal((3, 7, 5)).astype(np.float32)
    weights = rng.uniform(size=(3, 7)).astype(np.float32)
    expected = np.einsum("btd,bt->bd", frames, weights) / (weights.sum(-1, keepdims=True) + 1e-6)
    np.testing.assert_allclose(losses.weighted_pool(frames, weights), expected, rtol=1e-5)
    zero_w = jnp.zeros((3, 7))
    value, grads = jax.jit(
        jax.value_and_grad(lambda f, w: losses.weighted_pool(f, w).sum(), argnums=(0, 1))
    )(frames, zero_w)
    assert float(value) == 0.0 and _all_finite(grads)
    assert losses.weighted_pool(frames.astype(jnp.bfloat16), weights).dtype == jnp.float32


def _naive_attention(q, k, v, mask):
    """Loop reference: q (B, H, dk), k (B, S, H, dk), v (B, S, H, dv), mask (B, S)."""
    batch, n_heads, dk = q.shape
    seq, dv = k.shape[1], v.shape[-1]
    pooled = np.zeros((batch, n_heads, dv))
    weights = np.zeros((batch, n_heads, seq))
    for b in range(batch):
        for h in range(n_heads):
            valid = [s for s in range(seq) if mask[b, s]]
            if not valid:
                continue
            logits = np.array([q[b, h] @ k[b, s, h] / math.sqrt(dk) for s in valid])
            w = np.exp(logits - logits.max())
            w /= w.sum()
            for wi, s in zip(w, valid, strict=True):
                weights[b, h, s] = wi
                pooled[b, h] += wi * v[b, s, h]
    return pooled, weights


def test_cross_attention_pool_matches_naive_loop():
    rng = np.random.default_rng(21)
    batch, seq, n_heads, dk, dv = 3, 6, 2, 4, 5
    q = rng.standard_normal((batch, n_heads, dk)).astype(np.float32)
    k = rng.standard_normal((batch, seq, n_heads, dk)).astype(np.float32)
    v = rng.standard_normal((batch, seq, n_heads, dv)).astype(np.float32)
    mask = np.ones((batch, seq), bool)
    mask[1, 4:] = False
    mask[2, :] = False
    pooled, weights = attention(q, k, v, mask)
    ref_pooled, ref_weights = _naive_attention(q, k, v, mask)
    assert pooled.dtype == jnp.float32 and weights.shape == (batch, n_heads, seq)
    np.testing.assert_allclose(pooled, ref_pooled, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(weights, ref_weights, rtol=1e-5, atol=1e-6)
    assert np.all(np.asarray(weights)[1, :, 4:] == 0)
    np.testing.assert_allclose(np.asarray(weights)[:2].sum(-1), 1.0, rtol=1e-6)
    # Fully masked row: exact zeros.
    assert np.all(np.asarray(pooled)[2] == 0) and np.all(np.asarray(weights)[2] == 0)
    bf16 = [jnp.asarray(x, jnp.bfloat16) for x in (q, k, v)]
    pooled_bf16, weights_bf16 = attention(*bf16, mask)
    assert pooled_bf16.dtype == jnp.float32 and weights_bf16.dtype == jnp.float32
    np.testing.assert_allclose(pooled_bf16, ref_pooled, atol=0.1)
    # No mask == all-valid mask.
    np.testing.assert_allclose(
        attention(q, k, v)[0],
        attention(q, k, v, np.ones((batch, seq), bool))[0],
        rtol=1e-6,
    )


def test_cross_attention_pool_masked_garbage_and_fully_masked_grads_finite():
    rng = np.random.default_rng(22)
    q = jnp.asarray(rng.standard_normal((2, 2, 4)), jnp.float32)
    k = np.asarray(rng.standard_normal((2, 5, 2, 4)), np.float32)
    v = np.asarray(rng.standard_normal((2, 5, 2, 3)), np.float32)
    mask = np.array([[True, True, False, False, False], [False] * 5])
    k[:, 2:] = np.nan
    v[:, 2:] = np.inf

    def loss(q, k, v):
        pooled, weights = losses.cross_attention_pool(q, k, v, mask)
        return jnp.sum(pooled**2) + jnp.sum(weights**2)

    value, grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))(q, k, v)
    assert _all_finite((value, grads))
    assert np.all(np.asarray(grads[0])[1] == 0)  # the fully masked row has no influence
    pooled, weights = attention(q, k, v, mask)
    assert _all_finite((pooled, weights))
    assert np.all(np.asarray(weights)[0, :, 2:] == 0)


def test_cross_attention_pool_rejects_bad_shapes():
    with pytest.raises(ValueError, match="cross_attention_pool"):
        losses.cross_attention_pool(jnp.zeros((2, 4)), jnp.zeros((5, 2, 3)), jnp.zeros((5, 2, 3)))
    with pytest.raises(ValueError, match="mask"):
        losses.cross_attention_pool(
            jnp.zeros((2, 4)), jnp.zeros((5, 2, 4)), jnp.zeros((5, 2, 3)), jnp.ones(4, bool)
        )


# ------------------------------------------------------------------------------------ csc_loss


def test_csc_loss_is_log2_when_streams_are_equal():
    rng = np.random.default_rng(30)
    c = rng.standard_normal((4, 3, 16)).astype(np.float32)
    e = rng.standard_normal((4, 3, 16)).astype(np.float32)
    for tau in (0.05, 0.1, 1.0):
        np.testing.assert_allclose(csc(c, e, e, tau), math.log(2), rtol=1e-6)


def test_csc_loss_tends_to_zero_when_aligned_with_target_and_opposite_to_interference():
    rng = np.random.default_rng(31)
    speaker = rng.standard_normal((4, 1, 16))
    c = (speaker + 1e-3 * rng.standard_normal((4, 3, 16))).astype(np.float32)
    e_pos = c
    e_neg = -c
    values = [float(csc(c, e_pos, e_neg, t)) for t in (1.0, 0.3, 0.05)]
    assert values[0] > values[1] > values[2]  # monotone towards 0 as tau -> 0
    assert values[2] < 1e-3
    # The wrong assignment is heavily penalised: the loss is not trivially small.
    assert float(csc(c, e_neg, e_pos, 0.05)) > 10.0


def test_csc_loss_matches_numpy_reference():
    rng = np.random.default_rng(32)
    c, p, n = (rng.standard_normal((3, 4, 8)) for _ in range(3))
    tau = 0.2

    def unit(x):
        return x / np.linalg.norm(x, axis=-1, keepdims=True)

    sp = np.einsum("bkd,bjd->bkj", unit(c), unit(p)) / tau
    sn = np.einsum("bkd,bjd->bkj", unit(c), unit(n)) / tau
    expected = -np.log(np.exp(sp) / (np.exp(sp) + np.exp(sn)))
    got = csc(c, p, n, tau, reduction="none")
    np.testing.assert_allclose(got, expected.mean(axis=(1, 2)), rtol=1e-5)


def test_csc_loss_zero_inputs_finite_and_bf16():
    zeros = jnp.zeros((2, 3, 8))
    value, grads = jax.jit(jax.value_and_grad(losses.csc_loss, argnums=(0, 1, 2)))(
        zeros, zeros, zeros
    )
    assert _all_finite((value, grads))
    np.testing.assert_allclose(value, math.log(2), rtol=1e-6)
    rng = np.random.default_rng(33)
    c, p, n = (jnp.asarray(rng.standard_normal((2, 3, 8)), jnp.bfloat16) for _ in range(3))
    out = csc(c, p, n)
    assert out.dtype == jnp.float32 and out.shape == () and _all_finite(out)
    assert csc(c, p, n, reduction="none").dtype == jnp.float32


def test_csc_loss_rejects_bad_arguments():
    x = jnp.zeros((2, 3, 4))
    with pytest.raises(ValueError, match="reduction"):
        losses.csc_loss(x, x, x, reduction="sum")
    with pytest.raises(ValueError, match="temperature"):
        losses.csc_loss(x, x, x, temperature=0.0)
    with pytest.raises(ValueError, match="one shape"):
        losses.csc_loss(x, x, jnp.zeros((2, 3, 5)))
    with pytest.raises(ValueError, match="one shape"):
        losses.csc_loss(x, jnp.zeros((2, 1, 5)), jnp.zeros((2, 1, 5)))  # D differs


def test_csc_loss_with_fewer_streams_averages_the_same_pairs():
    """J < K streams: the mean over (k, j) of the pairs with j < J, i.e. exactly the full
    loss's pairs restricted to those conditions' streams."""
    key = jax.random.split(jax.random.PRNGKey(3), 3)
    c, p, n = (jax.random.normal(k, (2, 3, 8)) for k in key)
    full = losses.csc_loss(c, p, n, reduction="none")
    part = losses.csc_loss(c, p[:, :1], n[:, :1], reduction="none")
    assert part.shape == full.shape
    c_n = c / jnp.linalg.norm(c, axis=-1, keepdims=True)
    pn = p[:, 0] / jnp.linalg.norm(p[:, 0], axis=-1, keepdims=True)
    nn_ = n[:, 0] / jnp.linalg.norm(n[:, 0], axis=-1, keepdims=True)
    by_hand = jnp.mean(
        jax.nn.softplus(
            (jnp.einsum("bkd,bd->bk", c_n, nn_) - jnp.einsum("bkd,bd->bk", c_n, pn)) / 0.1
        ),
        axis=-1,
    )
    np.testing.assert_allclose(part, by_hand, rtol=1e-5)


@PROPERTY
@given(
    seed=st.integers(0, 2**31 - 1),
    batch=st.integers(1, 4),
    k=st.integers(1, 3),
    tau=st.sampled_from([0.05, 0.1, 0.5]),
)
def test_csc_loss_batch_properties(seed, batch, k, tau):
    rng = np.random.default_rng(seed)
    c, p, n = (rng.standard_normal((batch, k, 8)).astype(np.float32) for _ in range(3))
    mean = csc(c, p, n, tau)
    per = csc(c, p, n, tau, reduction="none")
    assert per.shape == (batch,)
    np.testing.assert_allclose(np.mean(per), mean, rtol=1e-5, atol=1e-6)
    # No in-batch negatives: each example's loss is independent of the rest of the batch.
    singles = [csc(c[b : b + 1], p[b : b + 1], n[b : b + 1], tau) for b in range(batch)]
    np.testing.assert_allclose(np.mean(singles), mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(singles, per, rtol=1e-5, atol=1e-6)
    # vmap over an extra leading axis equals a Python loop.
    stacked = [np.stack([x, x[::-1] * 0.5 + 0.1]) for x in (c, p, n)]
    vmapped = jax.jit(jax.vmap(csc, in_axes=(0, 0, 0, None)))(*stacked, tau)
    looped = [csc(*(s[i] for s in stacked), tau) for i in range(2)]
    np.testing.assert_allclose(vmapped, looped, rtol=1e-5, atol=1e-6)


# -------------------------------------------------------------------------------------- nt_xent


def _nt_xent_numpy(z1, z2, tau):
    z = np.concatenate([z1, z2]).astype(np.float64)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    n = len(z)
    half = n // 2
    out = np.zeros(n)
    for i in range(n):
        sims = np.array([z[i] @ z[j] / tau for j in range(n)])
        pos = sims[(i + half) % n]
        denom = sum(np.exp(sims[j]) for j in range(n) if j != i)
        out[i] = -np.log(np.exp(pos) / denom)
    return out


@pytest.mark.parametrize("seed,batch,tau", [(0, 2, 0.1), (1, 5, 0.5), (2, 8, 0.07)])
def test_nt_xent_matches_numpy(seed, batch, tau):
    rng = np.random.default_rng(seed)
    z1, z2 = (rng.standard_normal((batch, 6)).astype(np.float32) for _ in range(2))
    expected = _nt_xent_numpy(z1, z2, tau)
    got = nt_xent(z1, z2, tau, reduction="none")
    assert got.shape == (2 * batch,)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        nt_xent(z1, z2, tau),
        expected.mean(),
        rtol=1e-4,
    )


def test_nt_xent_small_for_perfect_alignment_with_orthogonal_negatives():
    z = np.eye(8, dtype=np.float32)[:4] * 3.0
    loss = float(nt_xent(z, z, 0.05))
    # Only the 2B - 2 orthogonal negatives (cos 0) compete: log(1 + 6 e^{-20}).
    assert loss == pytest.approx(math.log1p(6 * math.exp(-20)), abs=1e-6)
    assert loss < 1e-6
    shuffled = float(nt_xent(z, z[::-1], 0.05))
    assert shuffled > 10.0


def test_nt_xent_rejects_small_batch_and_bad_args():
    with pytest.raises(ValueError, match="B >= 2"):
        losses.nt_xent(jnp.ones((1, 4)), jnp.ones((1, 4)))
    with pytest.raises(ValueError, match="B >= 2"):
        jax.jit(losses.nt_xent)(jnp.ones((1, 4)), jnp.ones((1, 4)))
    with pytest.raises(ValueError, match="same shape"):
        losses.nt_xent(jnp.ones((3, 4)), jnp.ones((3, 5)))
    with pytest.raises(ValueError, match="reduction"):
        losses.nt_xent(jnp.ones((3, 4)), jnp.ones((3, 4)), reduction="sum")


def test_nt_xent_zero_inputs_finite_and_bf16():
    zeros = jnp.zeros((4, 8), jnp.bfloat16)
    value, grads = jax.jit(jax.value_and_grad(losses.nt_xent, argnums=(0, 1)))(zeros, zeros)
    assert value.dtype == jnp.float32 and _all_finite((value, grads))


# ---------------------------------------------------------------- jit + grad at training size


def _features(wave: jax.Array) -> jax.Array:
    """(B, K, T) waveform -> (B, K, 64) features: framed random projection, ReLU, time mean."""
    batch, k, length = wave.shape
    frames = wave.reshape(batch, k, length // 160, 160)
    proj = jax.random.normal(jax.random.key(0), (160, 64)) / math.sqrt(160)
    return jnp.mean(jax.nn.relu(frames @ proj), axis=2)


def test_jit_grad_on_training_sized_batch():
    key_e, key_r = jax.random.split(jax.random.key(42))
    refs = jax.random.normal(key_r, (16, 2, 32000))
    est = refs + 0.5 * jax.random.normal(key_e, (16, 2, 32000))

    si = jax.jit(jax.value_and_grad(lambda e, r: -jnp.mean(losses.si_snr(e, r))))
    assert _all_finite(si(est, refs))

    pit = jax.jit(jax.value_and_grad(lambda e, r: losses.pit_si_snr_loss(e, r)[0]))
    assert _all_finite(pit(est, refs))

    def csc(e, r):
        mix = e + r[:, ::-1]
        return losses.csc_loss(_features(mix), _features(e), _features(r[:, ::-1]))

    value, grad = jax.jit(jax.value_and_grad(csc, argnums=(0, 1)))(est, refs)
    assert _all_finite((value, grad))

    def simclr(e):
        f = _features(e)
        return losses.nt_xent(f[:, 0], f[:, 1])

    assert _all_finite(jax.jit(jax.value_and_grad(simclr))(est))


# ----------------------------------------------------------------------------------- packaging


def test_losses_does_not_import_flax_or_optax():
    code = (
        "import csc_jax.losses, sys; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('flax','optax')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", result.stdout
