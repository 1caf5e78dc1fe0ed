"""Flax Linen modules of the CSC model."""

from csc_jax.models.csc import CSCModel, model_from_config

__all__ = ["CSCModel", "model_from_config"]
