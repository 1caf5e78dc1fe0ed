"""Separator trunk: Conv-TasNet temporal convolutional network (TCN) over encoder frames.

The dilated depthwise convolution is written as P shifted multiply-adds over a padded
sequence rather than ``nn.Conv(feature_group_count=H)``: XLA:CPU lowers grouped dilated
convolutions poorly, and the multiply-add form measured faster at the demo's shapes
(docs/method.md, "Formulation"). gLN's statistics are two independent sums, not a mean
and then the deviations from it (:func:`gln_statistics`), and a block's second gLN is
applied through the next 1x1 conv's weights (:class:`FoldedAffineDense`); both measured
faster (docs/performance.md) and are checked against a textbook block in tests/test_models.py.

Rematerialisation (``model.remat``, docs/gpu_memory.md): the backward pass of a TCN block
needs about a dozen (..., F, H) activations against one (..., F, B) input, so keeping every
block's activations is what fills a GPU at the GPU config's shapes. 'block' keeps only each
block's input and recomputes the rest in the backward pass (about one more forward pass of
the TCN); 'repeat' keeps each repeat's input and recomputes one repeat at a time. Both run
the blocks as a ``lax.scan`` (see :func:`_scan_blocks` for why). Parameters and outputs are
the same in every mode; 'none' is the plain unrolled stack.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

# model.remat: which TCN segment is checkpointed ('none': no rematerialisation).
REMAT_MODES = ("none", "block", "repeat")
# model.remat_policy: what a checkpointed segment keeps for the backward pass besides its
# inputs. 'nothing': recompute everything; 'dots': keep the 1x1-conv (matmul) outputs, the
# costliest part to recompute, and recompute the elementwise rest.
REMAT_POLICIES = {
    "nothing": jax.checkpoint_policies.nothing_saveable,
    "dots": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}


def gln_statistics(x: jnp.ndarray, eps: float) -> tuple[jnp.ndarray, jnp.ndarray]:
    """gLN's mean and 1/std of each example over its last two axes, from Σx and Σx².

    Args:
      x: (..., F, C) float32.

    Returns:
      (mean, rstd), each (..., 1, 1) float32.

    The two sums do not wait for each other, unlike the mean followed by the squared deviations
    from it, and their gradient is a shorter chain. XLA:CPU still reads x once per sum (it does
    not fuse sibling reductions; docs/performance.md). Together with FoldedAffineDense this form
    measured 8-12 % faster than the two-pass one for an 8-block TCN's value and gradient at the
    demo's shapes (scripts/probe_tcn_formulations.py). The sums are of x minus a shift (the
    mean of the first frame, under stop_gradient: the variance does not depend on it), which
    keeps E[x²] - E[x]² from cancelling when the mean is large against the spread; float64
    checks in tests/test_models.py.
    """
    n = x.shape[-2] * x.shape[-1]
    shift = jax.lax.stop_gradient(jnp.mean(x[..., :1, :], axis=(-2, -1), keepdims=True))
    xs = x - shift
    m1 = jnp.sum(xs, axis=(-2, -1), keepdims=True) / n
    m2 = jnp.sum(jnp.square(xs), axis=(-2, -1), keepdims=True) / n
    var = jnp.maximum(m2 - jnp.square(m1), 0.0)
    return m1 + shift, jax.lax.rsqrt(var + eps)


class GlobalLayerNorm(nn.Module):
    """gLN: normalise each example over (frames, channels); per-channel gain and bias.

    Input/output (..., F, C). Statistics are computed in float32 (:func:`gln_statistics`).
    :meth:`standardise` returns the normalised input before the gain and bias, with the two
    parameters, for a caller that folds them into the next linear layer.
    """

    eps: float = 1e-8

    @nn.compact
    def standardise(self, x: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
        """(..., F, C) -> ((x - mean) / std as float32 (..., F, C), gain (C,), bias (C,))."""
        c = x.shape[-1]
        gain = self.param("scale", nn.initializers.ones, (c,), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (c,), jnp.float32)
        xf = x.astype(jnp.float32)
        mean, rstd = gln_statistics(xf, self.eps)
        return (xf - mean) * rstd, gain, bias

    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        z, gain, bias = self.standardise(x)
        return (z * gain + bias).astype(x.dtype)


class DepthwiseConv1D(nn.Module):
    """Non-causal dilated depthwise conv over frames: (..., F, C) -> (..., F, C), 'same' length.

    ``dilation`` is static, unless the call passes a traced ``dilation`` (int32 scalar): then
    the attribute is the largest value it may take, which sizes the zero padding, and the taps
    are dynamic slices (what a ``lax.scan`` over blocks of different dilations needs).
    """

    kernel: int
    dilation: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, dilation: jax.Array | None = None) -> jnp.ndarray:
        c = x.shape[-1]
        w = self.param("kernel", nn.initializers.lecun_normal(), (self.kernel, c), jnp.float32)
        b = self.param("bias", nn.initializers.zeros, (c,), jnp.float32)
        half = (self.kernel - 1) // 2
        left, right = half * self.dilation, (self.kernel - 1 - half) * self.dilation
        pad = [(0, 0)] * (x.ndim - 2) + [(left, right), (0, 0)]
        xp = jnp.pad(x, pad)
        f = x.shape[-2]
        w = w.astype(self.dtype)
        y = b.astype(self.dtype)
        for p in range(self.kernel):
            if dilation is None:
                start = p * self.dilation
                tap = xp[..., start : start + f, :]
            else:
                start = left + (p - half) * dilation
                tap = jax.lax.dynamic_slice_in_dim(xp, start, f, axis=x.ndim - 2)
            y = y + tap * w[p]
        return y


class FoldedAffineDense(nn.Module):
    """1x1 conv of ``z * gain + bias``, with gain and bias folded into its weights.

    ``(z * gain + bias) @ kernel + b = z @ (gain[:, None] * kernel) + (bias @ kernel + b)``:
    the (..., F, C) product ``z * gain + bias`` is never formed. Parameters ``kernel`` (C,
    features) and ``bias`` (features,), float32, initialised as ``nn.Dense``'s, so a model
    that uses it in place of gLN + ``nn.Dense`` has the same parameters.

    Input z (..., F, C); gain, bias (C,). Output (..., F, features) in ``dtype``.
    """

    features: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, z: jnp.ndarray, gain: jnp.ndarray, bias: jnp.ndarray) -> jnp.ndarray:
        c = z.shape[-1]
        kernel = self.param(
            "kernel", nn.initializers.lecun_normal(), (c, self.features), jnp.float32
        )
        b = self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)
        folded_kernel = (gain[:, None] * kernel).astype(self.dtype)
        folded_bias = (bias @ kernel + b).astype(self.dtype)
        return z.astype(self.dtype) @ folded_kernel + folded_bias


class TCNBlock(nn.Module):
    """1x1 conv B->H, PReLU, gLN, dilated depthwise conv, PReLU, gLN, 1x1 H->(residual, skip)."""

    hidden: int
    kernel: int
    dilation: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(
        self, x: jnp.ndarray, dilation: jax.Array | None = None
    ) -> tuple[jnp.ndarray, jnp.ndarray]:
        """(..., F, B) -> (x + residual, skip), both (..., F, B); ``dilation``: as
        :class:`DepthwiseConv1D`."""
        b = x.shape[-1]
        y = nn.Dense(self.hidden, dtype=self.dtype)(x)
        y = GlobalLayerNorm()(nn.PReLU(param_dtype=jnp.float32)(y))
        y = DepthwiseConv1D(self.kernel, self.dilation, dtype=self.dtype)(y, dilation)
        # The second gLN's gain and bias are applied through the output 1x1 conv's weights
        # (FoldedAffineDense): one fewer elementwise pass over the (..., F, H) activation.
        z, gain, bias = GlobalLayerNorm().standardise(nn.PReLU(param_dtype=jnp.float32)(y))
        out = FoldedAffineDense(2 * b, dtype=self.dtype, name="Dense_1")(z, gain, bias)
        residual, skip = out[..., :b], out[..., b:]
        return x + residual, skip


class TCN(nn.Module):
    """Stack of ``repeats`` x ``blocks`` TCN blocks with dilations 1, 2, ..., 2**(blocks-1).

    Input (..., F, B) -> output (..., F, B): the sum of skip connections (Conv-TasNet).

    Attributes:
      remat: 'none', 'block' or 'repeat' (REMAT_MODES; module docstring).
      remat_policy: a key of REMAT_POLICIES.
      unroll_scan: unroll the scan of 'block' / 'repeat' (the same computation): XLA's cost
        analysis counts a loop body once, so FLOPs are counted on the unrolled program
        (csc_jax/benchmarking/memory.py).

    The parameters are TCNBlock_0 .. TCNBlock_{repeats*blocks-1} in every mode.
    """

    hidden: int
    kernel: int
    blocks: int
    repeats: int
    dtype: jnp.dtype = jnp.float32
    remat: str = "none"
    remat_policy: str = "nothing"
    unroll_scan: bool = False

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        if self.remat not in REMAT_MODES:
            raise ValueError(f"remat={self.remat!r} is not one of {REMAT_MODES}")
        if self.remat_policy not in REMAT_POLICIES:
            raise ValueError(f"remat_policy={self.remat_policy!r} is not one of {REMAT_POLICIES}")
        names = [f"TCNBlock_{n}" for n in range(self.repeats * self.blocks)]
        skips = jnp.zeros_like(x)
        # Initialisation always runs the plain stack: it creates the same parameters.
        if self.remat == "none" or self.is_initializing():
            for n, name in enumerate(names):
                dilation = 2 ** (n % self.blocks)
                x, skip = TCNBlock(self.hidden, self.kernel, dilation, self.dtype, name=name)(x)
                skips = skips + skip
            return skips
        params = [self.variables["params"][name] for name in names]
        scan = _scan_blocks if self.remat == "block" else _scan_repeats
        return scan(self, params, x, skips)


def _stack(trees: Sequence[dict]) -> dict:
    """Parameter trees of equal structure -> one tree with a leading (len(trees),) axis."""
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)


def _checkpoint(tcn: TCN, fn, length: int):
    """``jax.checkpoint`` of a scan body with the TCN's policy.

    Inside a loop XLA cannot merge the recomputation with the forward pass, so no barrier is
    needed, except in a loop of one iteration, which XLA inlines.
    """
    policy = REMAT_POLICIES[tcn.remat_policy]
    return jax.checkpoint(fn, policy=policy, prevent_cse=length == 1)


def _scan(tcn: TCN, body, carry, xs, length: int):
    """``lax.scan(body, carry, xs)[0]``, or with ``tcn.unroll_scan`` the same body called
    ``length`` times in Python: ``lax.scan(unroll=True)`` emits calls of one function, which
    XLA's cost analysis counts once, like a loop body."""
    if not tcn.unroll_scan:
        return jax.lax.scan(body, carry, xs)[0]
    for i in range(length):
        carry, _ = body(carry, jax.tree.map(lambda a, i=i: a[i], xs))
    return carry


def _scan_blocks(tcn: TCN, params: list[dict], x: jnp.ndarray, skips: jnp.ndarray) -> jnp.ndarray:
    """'block': the TCN as one ``lax.scan`` over its blocks, each one checkpointed.

    Args:
      tcn: the TCN (sizes, policy). params: one parameter tree per block, in order.
      x, skips: (..., F, B) input and zero skip sum.

    Returns:
      (..., F, B) sum of skip connections, equal to the unrolled stack's.

    Why a scan, one block per iteration. An unrolled ``jax.checkpoint`` relies on XLA
    optimisation barriers to keep its recomputation from being merged back into the forward
    pass (CSE); XLA:CPU removes them before a later CSE pass, so unrolled, the compiled step
    and its memory estimate are those without rematerialisation. In a loop the recomputation
    is in the backward loop's body and cannot be merged; with one block per iteration it
    also cannot be scheduled ahead of the block's own backward pass, which is what keeps
    only one block's activations alive (with several blocks per body XLA:CPU recomputed all
    of them first). The blocks' dilations differ, so the depthwise conv reads its dilation
    from the scanned sequence (DepthwiseConv1D's traced form).
    """
    template = TCNBlock(tcn.hidden, tcn.kernel, 2 ** (tcn.blocks - 1), tcn.dtype, parent=None)

    def body(carry, xs):
        x, skips = carry
        p, dilation = xs
        x, skip = template.apply({"params": p}, x, dilation)
        return (x, skips + skip), None

    n = len(params)
    dilations = jnp.asarray([2 ** (i % tcn.blocks) for i in range(n)], jnp.int32)
    _, skips = _scan(tcn, _checkpoint(tcn, body, n), (x, skips), (_stack(params), dilations), n)
    return skips


def _scan_repeats(tcn: TCN, params: list[dict], x: jnp.ndarray, skips: jnp.ndarray) -> jnp.ndarray:
    """'repeat': the TCN as a ``lax.scan`` over its repeats, each repeat checkpointed.

    Same arguments and result as :func:`_scan_blocks`. The body runs the ``blocks`` blocks of
    one repeat unrolled (static dilations); the backward pass recomputes one repeat at a time,
    so one repeat's activations are alive at once instead of one block's.
    """
    templates = [
        TCNBlock(tcn.hidden, tcn.kernel, 2**i, tcn.dtype, parent=None) for i in range(tcn.blocks)
    ]

    def body(carry, per_block):
        x, skips = carry
        for template, p in zip(templates, per_block, strict=True):
            x, skip = template.apply({"params": p}, x)
            skips = skips + skip
        return (x, skips), None

    # [block position][repeat] -> per position, the repeats' parameters stacked.
    stacked = [_stack(params[i :: tcn.blocks]) for i in range(tcn.blocks)]
    _, skips = _scan(tcn, _checkpoint(tcn, body, tcn.repeats), (x, skips), stacked, tcn.repeats)
    return skips


class SeparatorTrunk(nn.Module):
    """Shared trunk of the separative encoder.

    (..., F, N) encoder features -> gLN -> 1x1 bottleneck B -> TCN -> (..., F, B) bottom-up
    embedding h. ``remat``, ``remat_policy``, ``unroll_scan``: as :class:`TCN`.
    """

    bottleneck: int
    hidden: int
    kernel: int
    blocks: int
    repeats: int
    dtype: jnp.dtype = jnp.float32
    remat: str = "none"
    remat_policy: str = "nothing"
    unroll_scan: bool = False

    @nn.compact
    def __call__(self, features: jnp.ndarray) -> jnp.ndarray:
        x = GlobalLayerNorm()(features)
        x = nn.Dense(self.bottleneck, dtype=self.dtype)(x)
        return TCN(
            self.hidden,
            self.kernel,
            self.blocks,
            self.repeats,
            dtype=self.dtype,
            remat=self.remat,
            remat_policy=self.remat_policy,
            unroll_scan=self.unroll_scan,
        )(x)
