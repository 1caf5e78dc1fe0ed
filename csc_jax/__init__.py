"""csc-jax: Contrastive Separative Coding in JAX/Flax."""

__version__ = "0.1.0"


def load(*args, **kwargs):
    """Load a trained model (see ``csc_jax.inference.load``); imports JAX only when called."""
    from csc_jax.inference import load as _load

    return _load(*args, **kwargs)
