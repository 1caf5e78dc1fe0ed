"""csc-jax: Contrastive Separative Coding in JAX/Flax."""

__version__ = "0.1.0"


def load(*args, **kwargs):
    """Load a trained model (``csc_jax.inference.loading.load``); imports JAX only when called."""
    from csc_jax.inference.loading import load as _load

    return _load(*args, **kwargs)
