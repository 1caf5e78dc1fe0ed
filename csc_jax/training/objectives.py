"""Training objectives per method: (params, model, mixed batch, config) -> (loss, metrics).

* ``csc``: separation (negative SI-SNR of the extracted target) + the contrastive separative
  loss between each condition's global vector and the target / interference streams
  (docs/method.md, "Definitions");
* ``simclr``: the baseline, NT-Xent between two corrupted views with in-batch negatives.

The math is in :mod:`csc_jax.losses` (pure); this module wires the model's outputs to it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from csc_jax import losses
from csc_jax.models.csc import frame_energy


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
    es = frame_energy(mixed["target"], config)
    ei = frame_energy(mixed["interference"], config)
    en = frame_energy(mixed["noise"], config)
    total = es + ei + en + 1e-8
    return es / total, ei / total


def component_streams(params, model, mixed, conditions: int = 0) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Target and interference streams as K=1 global vectors of the mixed components.

    ``conditions``: embed the components of the first this many conditions only (0 = all K);
    fewer component passes cost less trunk work (each is a full forward and backward pass).

    Returns (e+ (B, J, D), e- (B, J, D)) float32, J = ``conditions`` or K: the model's own
    single-utterance embedding of the target component and of the interfering-speech
    component of each of those mixtures.
    """
    target, interference = mixed["target"], mixed["interference"]
    if conditions:
        target, interference = target[:, :conditions], interference[:, :conditions]
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
    components = config.loss.stream_weights == "components"
    if components:
        component_params = params
        if config.loss.stop_gradient_components:
            component_params = jax.lax.stop_gradient(params)
        e_target, e_interf = component_streams(
            component_params, model, mixed, config.loss.component_conditions
        )
    condition = None
    if config.loss.extraction_condition == "enrollment":
        # Mixture k is extracted with the clean target vector of condition k+1 (mod J, the
        # embedded component conditions): another crop of the same utterance, as an
        # enrollment is another utterance at evaluation; the separation loss then trains the
        # K=1 vector that verification uses. With J = 1 (K = 1) it is the crop's own.
        k, j = mixed["mixture"].shape[1], e_target.shape[1]
        condition = e_target[:, (jnp.arange(k) + 1) % j]  # [:, k] = e+[:, (k + 1) % J]
    out = model.apply({"params": params}, mixed["mixture"], condition=condition)
    si_snr = losses.si_snr(out["estimate"], mixed["target"])  # (B, K)
    si_snr_mix = losses.si_snr(mixed["mixture"], mixed["target"])
    sep_loss = -jnp.mean(si_snr)
    if components:
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
