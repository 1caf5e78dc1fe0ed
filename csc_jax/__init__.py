"""csc-jax: Contrastive Separative Coding in JAX/Flax."""

__version__ = "0.1.0"
