"""The pure training step: (state, batch) -> (state, metrics).

One function serves every parallel mode: under ``jax.jit`` over a Mesh it sees the global
batch; under ``pmap`` it sees one device's rows and averages gradients and metrics over
``axis_name``. Mixing randomness is keyed by global example index, so both see the same data.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax

from csc_jax import losses
from csc_jax.data import mixing
from csc_jax.models.encoder import frame
from csc_jax.training.state import TrainState


def frame_energy(x: jnp.ndarray, kernel: int) -> jnp.ndarray:
    """Energy of each encoder frame: (..., T) -> (..., F) float32 (same framing as the encoder)."""
    return jnp.sum(jnp.square(frame(x.astype(jnp.float32), kernel)), axis=-1)


def stream_weights(out, mixed, config) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Frame weights (B, K, F) of the target stream and of the interference stream.

    'oracle': each frame's share of target energy vs. interfering-*speech* energy, computed
      from the components the mixing step created (the same knowledge the separation loss
      uses; no labels). Noise energy counts in the denominator only, so neither stream can be
      told apart by "speech vs. noise".
    'mask': the extraction head's estimated share ``target_weights`` and its complement
      (stop-gradient, so the contrastive loss cannot move the mask).
    """
    if config.loss.stream_weights == "mask":
        w = jax.lax.stop_gradient(out["target_weights"])
        return w, 1.0 - w
    kernel = config.model.enc_kernel
    es = frame_energy(mixed["target"], kernel)
    ei = frame_energy(mixed["interference"], kernel)
    en = frame_energy(mixed["noise"], kernel)
    total = es + ei + en + 1e-8
    return es / total, ei / total


def component_streams(params, model, mixed) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Target and interference streams as K=1 global vectors of the mixed components.

    Returns (e+ (B, K, D), e- (B, K, D)) float32: the model's own single-utterance embedding of
    the target component and of the interfering-speech component of each mixture.
    """
    target, interference = mixed["target"], mixed["interference"]
    b, k, t = target.shape
    both = jnp.stack([target, interference], axis=2).reshape(b * k * 2, 1, t)
    g = model.apply({"params": params}, both, separate=False)["global"]
    g = g.reshape(b, k, 2, -1)
    return g[:, :, 0], g[:, :, 1]


def csc_objective(params, model, mixed, config):
    """Separation + contrastive separative loss on (B, K, T) mixtures.

    Returns:
      (scalar float32 loss, dict of scalar metrics).
    """
    out = model.apply({"params": params}, mixed["mixture"])
    si_snr = losses.si_snr(out["estimate"], mixed["target"])  # (B, K)
    si_snr_mix = losses.si_snr(mixed["mixture"], mixed["target"])
    sep_loss = -jnp.mean(si_snr)
    if config.loss.stream_weights == "components":
        component_params = params
        if config.loss.stop_gradient_components:
            component_params = jax.lax.stop_gradient(params)
        e_target, e_interf = component_streams(component_params, model, mixed)
        w_target = out["target_weights"]
    else:
        w_target, w_interf = stream_weights(out, mixed, config)  # (B, K, F) each
        e_target = losses.weighted_pool(out["frames"], w_target)  # (B, K, D)
        e_interf = losses.weighted_pool(out["frames"], w_interf)
    csc = losses.csc_loss(out["global"], e_target, e_interf, temperature=config.loss.temperature)
    loss = config.loss.lambda_sep * sep_loss + config.loss.lambda_csc * csc
    metrics = {
        "loss": loss,
        "sep_loss": sep_loss,
        "csc_loss": csc,
        "si_snr": jnp.mean(si_snr),
        "si_snri": jnp.mean(si_snr - si_snr_mix),
        "target_weight": jnp.mean(w_target),
    }
    return loss, metrics


def simclr_objective(params, model, mixed, config):
    """SimCLR baseline: conditions 0 and 1 are two corrupted views; NT-Xent over the batch.

    Under pmap the negatives are the device's own rows (as in most pmap SimCLR code).
    """
    views = mixed["mixture"][:, :2]  # (B, 2, T)
    b, _, t = views.shape
    out = model.apply({"params": params}, views.reshape(b * 2, 1, t), separate=False)
    g = out["global"].reshape(b, 2, -1)
    loss = losses.nt_xent(g[:, 0], g[:, 1], temperature=config.loss.temperature)
    return loss, {"loss": loss, "nt_xent": loss}


OBJECTIVES = {"csc": csc_objective, "simclr": simclr_objective}


def train_step(
    state: TrainState,
    batch: dict[str, jax.Array],
    *,
    model,
    tx: optax.GradientTransformation,
    config,
    axis_name: str | None = None,
) -> tuple[TrainState, dict[str, jax.Array]]:
    """One optimisation step.

    Args:
      state: TrainState (replicated).
      batch: {'target': (B, K, T), 'interferer': (B, K, T)} float32 clean crops (B global under
        jit, per device under pmap).
      model, tx, config: static.
      axis_name: the pmap axis to average over, or None under jit.

    Returns:
      (new state, metrics dict of float32 scalars incl. 'grad_norm', 'finite', 'skipped').
    """
    key = jax.random.fold_in(state.rng, state.step)
    rows = batch["target"].shape[0]
    offset = 0 if axis_name is None else jax.lax.axis_index(axis_name) * rows
    example_ids = offset + jnp.arange(rows, dtype=jnp.int32)
    mixed = mixing.mix_batch(key, batch, example_ids, config.mixing)
    objective = functools.partial(OBJECTIVES[config.method], model=model, config=config)

    def loss_fn(params):
        return objective(params, mixed=mixed)

    (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    if axis_name is not None:
        grads = jax.lax.pmean(grads, axis_name)
        metrics = jax.lax.pmean(metrics, axis_name)
        loss = metrics["loss"]
    grad_norm = optax.global_norm(grads)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
    new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state)
    if config.train.skip_nonfinite_updates:
        # Keep the old params/opt state but advance the step so the data and keys move on.
        kept = state.replace(step=state.step + 1, skipped=state.skipped + 1)
        new_state = jax.tree.map(lambda a, b: jnp.where(finite, a, b), new_state, kept)
    metrics = dict(metrics)
    metrics["grad_norm"] = grad_norm
    metrics["finite"] = finite.astype(jnp.float32)
    metrics["skipped"] = new_state.skipped.astype(jnp.float32)
    return new_state, metrics
