"""Time and check alternative formulations of the TCN stack (docs/performance.md, "Trunk
formulation").

Every variant computes the same function of the same Flax parameters (those of
``models.separator.TCN``): the sum of the blocks' skip outputs, with the loss mean(skips²)
and its gradient jitted together. ``current`` is the project's own TCN; the others are
written here from the block's parameter dicts:

* ``former``: two-pass gLN (mean, then squared deviations), gLN then Dense (the formulation
  before 540d2a7);
* ``fused_vjp``: PReLU + gLN standardisation as one ``jax.custom_vjp`` whose backward pass
  takes every sum it needs from one set of inputs, second gLN folded into the Dense;
* ``fold_past_matmul``: the second gLN's normalisation itself moved past the output matmul
  (``rstd · (y @ g·W) + ...``);
* ``fold_into_taps``: the first gLN folded into the depthwise taps, with the edge frames
  corrected for the zero padding.

It prints each variant's loss, its largest gradient error against ``former`` computed in
float64 (relative to the gradient's scale), and the median of ``--calls`` calls per
round, the variants alternating within each round.

  python scripts/probe_tcn_formulations.py --shapes demo --rounds 3
  python scripts/probe_tcn_formulations.py --shapes paper --variants current,former --rounds 2
  python scripts/probe_tcn_formulations.py --variants current --examples 72
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from csc_jax import allocator  # noqa: E402

allocator.ensure()  # before JAX starts

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from csc_jax.models.separator import TCN, gln_statistics  # noqa: E402

# (examples, frames, bottleneck B, hidden H) of the demo's and the paper's backbone trunks.
SHAPES = {"demo": (24, 500, 64, 128), "paper": (2, 4000, 128, 512)}
KERNEL, EPS = 3, 1e-8


def _prelu(y, q):
    return jnp.where(y >= 0, y, q["negative_slope"] * y)


def _taps(y, w, d):
    """Zero-padded 'same' depthwise conv of (N, F, C) with taps (3, C), no bias."""
    f = y.shape[-2]
    yp = jnp.pad(y, [(0, 0), (d, d), (0, 0)])
    return sum(yp[:, p * d : p * d + f] * w[p] for p in range(KERNEL))


def _two_pass(y):
    mean = jnp.mean(y, axis=(-2, -1), keepdims=True)
    var = jnp.mean(jnp.square(y - mean), axis=(-2, -1), keepdims=True)
    return mean, jax.lax.rsqrt(var + EPS)


def _out(x, p, z_or_y, folded):
    """The output 1x1 conv; ``folded``: the second gLN's gain and bias in its weights."""
    w, c = p["Dense_1"]["kernel"], p["Dense_1"]["bias"]
    g, be = p["GlobalLayerNorm_1"]["scale"], p["GlobalLayerNorm_1"]["bias"]
    out = z_or_y @ (g[:, None] * w) + (be @ w + c) if folded else z_or_y @ w + c
    b = x.shape[-1]
    return x + out[..., :b], out[..., b:]


def block_former(x, p, d):
    y = x @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"]
    y = _prelu(y, p["PReLU_0"])
    mean, rstd = _two_pass(y)
    y = (y - mean) * rstd * p["GlobalLayerNorm_0"]["scale"] + p["GlobalLayerNorm_0"]["bias"]
    y = _taps(y, p["DepthwiseConv1D_0"]["kernel"], d) + p["DepthwiseConv1D_0"]["bias"]
    y = _prelu(y, p["PReLU_1"])
    mean, rstd = _two_pass(y)
    y = (y - mean) * rstd * p["GlobalLayerNorm_1"]["scale"] + p["GlobalLayerNorm_1"]["bias"]
    return _out(x, p, y, folded=False)


@jax.custom_vjp
def _prelu_standardise(y, a):
    z, _ = _prelu_standardise_fwd(y, a)
    return z


def _prelu_standardise_fwd(y, a):
    u = jnp.where(y >= 0, y, a * y)
    mean, rstd = gln_statistics(u, EPS)
    return (u - mean) * rstd, (y, a, mean, rstd)


def _prelu_standardise_bwd(res, dz):
    y, a, mean, rstd = res
    n = y.shape[-1] * y.shape[-2]
    z = (jnp.where(y >= 0, y, a * y) - mean) * rstd
    ax = (-2, -1)
    neg = y < 0
    yn = jnp.where(neg, y, 0.0)
    s1 = jnp.sum(dz, axis=ax, keepdims=True) / n
    s2 = jnp.sum(dz * z, axis=ax, keepdims=True) / n
    t1 = jnp.sum(dz * yn, axis=ax, keepdims=True)
    t2 = jnp.sum(yn, axis=ax, keepdims=True)
    t3 = jnp.sum(z * yn, axis=ax, keepdims=True)
    du = rstd * (dz - s1 - z * s2)  # gLN's closed-form gradient
    da = jnp.sum(rstd * (t1 - s1 * t2 - s2 * t3))  # = sum(du * y * [y < 0])
    return jnp.where(neg, a * du, du), da.astype(jnp.result_type(a))


_prelu_standardise.defvjp(_prelu_standardise_fwd, _prelu_standardise_bwd)


def block_fused_vjp(x, p, d):
    y = x @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"]
    z = _prelu_standardise(y, p["PReLU_0"]["negative_slope"])
    y = z * p["GlobalLayerNorm_0"]["scale"] + p["GlobalLayerNorm_0"]["bias"]
    y = _taps(y, p["DepthwiseConv1D_0"]["kernel"], d) + p["DepthwiseConv1D_0"]["bias"]
    z = _prelu_standardise(y, p["PReLU_1"]["negative_slope"])
    return _out(x, p, z, folded=True)


def _folded_dense_norm(x, p, y):
    mean, rstd = gln_statistics(y, EPS)
    w, c = p["Dense_1"]["kernel"], p["Dense_1"]["bias"]
    g, be = p["GlobalLayerNorm_1"]["scale"], p["GlobalLayerNorm_1"]["bias"]
    wg = g[:, None] * w
    out = rstd * (y @ wg) + (be @ w + c) - (rstd * mean) * (g @ w)
    b = x.shape[-1]
    return x + out[..., :b], out[..., b:]


def block_fold_past_matmul(x, p, d):
    y = x @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"]
    y = _prelu(y, p["PReLU_0"])
    mean, rstd = gln_statistics(y, EPS)
    y = (y - mean) * rstd * p["GlobalLayerNorm_0"]["scale"] + p["GlobalLayerNorm_0"]["bias"]
    y = _taps(y, p["DepthwiseConv1D_0"]["kernel"], d) + p["DepthwiseConv1D_0"]["bias"]
    return _folded_dense_norm(x, p, _prelu(y, p["PReLU_1"]))


def block_fold_into_taps(x, p, d):
    y = x @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"]
    y = _prelu(y, p["PReLU_0"])
    mean, rstd = gln_statistics(y, EPS)
    g, be = p["GlobalLayerNorm_0"]["scale"], p["GlobalLayerNorm_0"]["bias"]
    w, wb = p["DepthwiseConv1D_0"]["kernel"], p["DepthwiseConv1D_0"]["bias"]
    f = y.shape[-2]
    # valid[t, p]: tap p of frame t reads inside the sequence (the padding is zero after gLN).
    t = np.arange(f)[:, None] + (np.arange(KERNEL)[None, :] - 1) * d
    valid = ((t >= 0) & (t < f)).astype(np.float32)
    shift = be - mean * rstd * g  # (N, 1, H): gLN's per-channel offset
    y = rstd * _taps(y, w * g, d) + shift * (jnp.asarray(valid) @ w) + wb
    return _folded_dense_norm(x, p, _prelu(y, p["PReLU_1"]))


BLOCKS = {
    "former": block_former,
    "fused_vjp": block_fused_vjp,
    "fold_past_matmul": block_fold_past_matmul,
    "fold_into_taps": block_fold_into_taps,
}


def make_loss(name: str, tcn: TCN, blocks: int):
    if name == "current":
        return lambda params, x: jnp.mean(jnp.square(tcn.apply({"params": params}, x)))
    block = BLOCKS[name]

    def loss(params, x):
        skips = jnp.zeros_like(x)
        for i in range(len(params)):
            x, s = block(x, params[f"TCNBlock_{i}"], 2 ** (i % blocks))
            skips = skips + s
        return jnp.mean(jnp.square(skips))

    return loss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", choices=sorted(SHAPES), default="demo")
    parser.add_argument(
        "--variants", default="current,former,fused_vjp,fold_past_matmul,fold_into_taps"
    )
    parser.add_argument(
        "--examples", type=int, default=0, help="batch of utterances (0: the shapes' own)"
    )
    parser.add_argument("--blocks", type=int, default=4, help="blocks per repeat (dilations)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=5, help="timed calls per round")
    args = parser.parse_args()
    names = [n for n in args.variants.split(",") if n]
    for n in names:
        if n != "current" and n not in BLOCKS:
            sys.exit(f"--variants: unknown variant {n!r} (known: current, {', '.join(BLOCKS)})")

    n_ex, frames, b, h = SHAPES[args.shapes]
    n_ex = args.examples or n_ex
    tcn = TCN(hidden=h, kernel=KERNEL, blocks=args.blocks, repeats=args.repeats)
    x = jax.random.normal(jax.random.PRNGKey(1), (n_ex, frames, b), jnp.float32)
    params = tcn.init(jax.random.PRNGKey(0), x)["params"]
    # Gains, biases and slopes away from their initial values, so every fold is exercised.
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(2), len(leaves))
    params = jax.tree.unflatten(
        tree, [v + 0.1 * jax.random.normal(k, v.shape) for v, k in zip(leaves, keys, strict=True)]
    )

    with jax.enable_x64():
        p64 = jax.tree.map(lambda v: jnp.asarray(v, jnp.float64), params)
        # The plain formulas in float64 (the Flax modules compute in float32 whatever the input).
        ref = jax.grad(make_loss("former", tcn, args.blocks))(p64, jnp.asarray(x, jnp.float64))
        ref = [np.asarray(v) for v in jax.tree.leaves(ref)]
    fns = {n: jax.jit(jax.value_and_grad(make_loss(n, tcn, args.blocks))) for n in names}
    for n in names:
        value, grad = jax.block_until_ready(fns[n](params, x))
        err = max(
            float(np.max(np.abs(np.asarray(g, np.float64) - r)) / np.max(np.abs(r)))
            for g, r in zip(jax.tree.leaves(grad), ref, strict=True)
        )
        print(f"{n:17s} loss {float(value):.6f}  max gradient error vs float64: {err:.2e}")
    per_round = {n: [] for n in names}
    for _ in range(args.rounds):
        for n in names:
            times = []
            for _ in range(args.calls):
                start = time.perf_counter()
                jax.block_until_ready(fns[n](params, x))
                times.append(time.perf_counter() - start)
            per_round[n].append(1e3 * float(np.median(times)))
    print(
        f"{args.shapes} shapes {(n_ex, frames, b, h)}, "
        f"{args.blocks * args.repeats} blocks; ms per call:"
    )
    for n in names:
        print(f"{n:17s} " + " / ".join(f"{t:.1f}" for t in per_round[n]))


if __name__ == "__main__":
    main()
