"""The one jitted wrapper of ``model.apply`` shared by inference and the evaluation protocol.

:class:`BatchedModel` jits ``model.apply(method=...)`` once for each of the model's inference
methods (``embed``, ``global_vectors``, ``extract``, and for enrollment-queried scoring
``embed_and_query`` / ``embed_and_attend``) and offers two ways to call them:

* ``batched(method, x, *rest)``: one call on arrays whose shape the caller chose
  (:class:`~csc_jax.inference.speaker_model.SpeakerModel` builds length-bucketed batches);
* ``embed`` / ``global_vectors`` / ``extract`` / ``embed_and_query`` / ``embed_and_attend``:
  any number of rows, run ``batch_size`` rows at
  a time with the last batch zero-padded to ``batch_size``, so one shape is compiled per input
  length (what the verification protocol uses; the zero rows are computed and dropped; rows
  do not interact, so the kept rows equal an unpadded call's up to float rounding).

Every traced shape is recorded in ``compiled_shapes``.
"""

from __future__ import annotations

from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np

# Queries per 'embed_and_attend' call (rows * Q): the attention broadcasts each utterance's keys
# and values over its queries, about 0.37 MB per query at 1000 frames and attention_dim 64
# (XLA memory analysis of the demo model: 32 rows x 27 queries take 473 MB of temporaries,
# `embed` of 32 rows 156 MB), so 256 queries add ~95 MB.
QUERIES_PER_CALL = 256
METHODS = ("embed", "global_vectors", "extract", "embed_and_query", "embed_and_attend")


def _batches(n: int, size: int) -> Iterator[slice]:
    for i in range(0, n, size):
        yield slice(i, min(n, i + size))


class BatchedModel:
    """A CSC-family model and its parameters, with one jitted function per inference method.

    Args:
      model: a CSC-family Flax module (``CSCModel``) with ``embed``, ``global_vectors`` and
        ``extract`` methods (``embed_and_query`` / ``embed_and_attend`` need its
        cross-attention; they are traced only when called).
      params: its parameters (pytree of float32 arrays).
      batch_size: rows per call of :meth:`embed`, :meth:`global_vectors` and :meth:`extract`.

    Attributes:
      model, params, batch_size: as given.
      compiled_shapes: set of ``(method, rows, samples)`` tuples, one per traced input shape.
    """

    def __init__(self, model, params, batch_size: int = 32):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model, self.params, self.batch_size = model, params, int(batch_size)
        self.compiled_shapes: set[tuple[str, int, int]] = set()
        self._fns = {name: self._jit(name) for name in METHODS}

    def _jit(self, name: str):
        method = getattr(self.model, name)

        def fn(params, x, *rest):
            # Runs only while jax traces, i.e. once per new input shape.
            self.compiled_shapes.add((name,) + tuple(int(d) for d in x.shape))
            return self.model.apply({"params": params}, x, *rest, method=method)

        return jax.jit(fn)

    def __call__(self, method: str, x: np.ndarray, *rest: np.ndarray) -> np.ndarray:
        """One jitted call of ``method`` on arrays of the caller's shape.

        Args:
          method: one of ``METHODS``.
          x: (B, T) float32 waveforms.
          rest: for 'extract', the (B, D) float32 conditioning vectors; for
            'embed_and_attend', the (B, Q, Bn) float32 queries.

        Returns:
          'embed': (B, D) float32, unit norm; 'global_vectors': (B, D) float32;
          'extract': (B, T) float32; 'embed_and_query': ((B, D) unit norm, (B, Bn)) float32;
          'embed_and_attend': ((B, D) unit norm, (B, Q, D)) float32.
        """
        if method not in self._fns:
            raise ValueError(f"unknown method {method!r}: expected one of {METHODS}")
        args = [jnp.asarray(a, jnp.float32) for a in (x, *rest)]
        out = self._fns[method](self.params, *args)
        return tuple(map(np.asarray, out)) if isinstance(out, tuple) else np.asarray(out)

    def _run(self, method: str, *arrays: np.ndarray, rows: int | None = None):
        """``method`` on (N, ...) arrays in ``rows``-row calls (default ``batch_size``), last
        batch zero-padded; a method with several outputs gives a tuple of (N, ...) arrays."""
        rows = rows or self.batch_size
        n = arrays[0].shape[0]
        out = []
        for sl in _batches(n, rows):
            chunk = [a[sl] for a in arrays]
            pad = rows - chunk[0].shape[0]
            chunk = [np.pad(a, [(0, pad)] + [(0, 0)] * (a.ndim - 1)) for a in chunk]
            res = self(method, *chunk)
            out.append(
                tuple(r[: rows - pad] for r in res) if isinstance(res, tuple) else res[: rows - pad]
            )
        if isinstance(out[0], tuple):
            return tuple(np.concatenate(parts, axis=0) for parts in zip(*out, strict=True))
        return np.concatenate(out, axis=0)

    def embed(self, x: np.ndarray) -> np.ndarray:
        """(N, T) float32 waveforms -> (N, D) float32 unit-norm embeddings (K=1 global vector)."""
        return self._run("embed", x)

    def global_vectors(self, x: np.ndarray) -> np.ndarray:
        """(N, T) float32 -> (N, D) float32 unnormalised global vectors (extraction input)."""
        return self._run("global_vectors", x)

    def extract(self, mixtures: np.ndarray, vectors: np.ndarray) -> np.ndarray:
        """(N, T) float32 mixtures, (N, D) float32 enrollment vectors -> (N, T) float32 targets."""
        return self._run("extract", mixtures, vectors)

    def embed_and_query(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, T) float32 -> ((N, D) float32 unit-norm embeddings, equal to :meth:`embed`'s;
        (N, Bn) float32 cross-attention queries), one trunk pass (enrollment of 'csc+query')."""
        return self._run("embed_and_query", x)

    def embed_and_attend(self, x: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each utterance's own embedding and its frames attended by Q given queries.

        Args:
          x: (N, T) float32 test waveforms.
          queries: (N, Q, Bn) float32 queries (from :meth:`embed_and_query`), zero = padding.

        Returns:
          ((N, D) float32 unit-norm embeddings, equal to :meth:`embed`'s; (N, Q, D) float32
          queried global vectors). Rows per call are cut to about QUERIES_PER_CALL queries: the
          attention broadcasts each utterance's keys and values over its Q queries, so its
          memory grows with rows * Q * frames.
        """
        if queries.ndim != 3 or queries.shape[0] != x.shape[0]:
            raise ValueError(
                f"embed_and_attend needs queries (N, Q, Bn) for x (N, T); got {queries.shape} "
                f"for {x.shape}"
            )
        rows = max(1, min(self.batch_size, QUERIES_PER_CALL // queries.shape[1]))
        return self._run("embed_and_attend", x, queries, rows=rows)
