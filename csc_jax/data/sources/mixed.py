"""`MixedSource`: several training corpora as one source, each with a share of the positions.

Utterance i of the mixture is utterance i - offset[c] of component c; keys and speaker labels
are prefixed with the component's name (``folder/id00012/sess/utt.wav``), so two corpora never
share a speaker label. The weights act through ``epoch_table``: one epoch of the training
pipeline is a shuffle of this table of utterance indices, in which component c holds
``round(w_c * M)`` slots, ``M = max_c ceil(N_c / w_c)`` (so every utterance appears at least
once per epoch; a component's slots cycle through a fixed permutation of its utterances).
The pipeline also draws interferers from the table, so they follow the weights too. Everything
is a fixed function of the component sizes and weights: the stream stays a pure function of
(seed, position).
"""

from __future__ import annotations

import math

import numpy as np

from csc_jax.data.sources.base import AudioSource
from csc_jax.errors import DataError

# Seeds the fixed permutation that decides which utterances of a component fill its extra slots.
_TABLE_SEED = 0


def weighted_epoch_table(sizes: list[int], weights: list[float]) -> np.ndarray:
    """int64 (M,) utterance indices of one epoch (see the module docstring).

    Args:
      sizes: N_c utterances per component (>= 1), in concatenation order.
      weights: w_c > 0 per component (normalised here).
    """
    w = np.asarray(weights, np.float64)
    w = w / w.sum()
    total = max(math.ceil(n / wc) for n, wc in zip(sizes, w, strict=True))
    rng = np.random.default_rng(_TABLE_SEED)
    parts, offset = [], 0
    for n, wc in zip(sizes, w, strict=True):
        slots = max(n, int(round(wc * total)))
        parts.append(offset + rng.permutation(n)[np.arange(slots) % n])
        offset += n
    return np.concatenate(parts).astype(np.int64)


class MixedSource(AudioSource):
    """The concatenation of named component sources with sampling weights.

    Args:
      components: (name, AudioSource, weight > 0) per corpus; all at one sample rate.

    Attributes:
      epoch_table: int64 (M,) utterance indices of one training epoch (weights applied).
      weights: the normalised weight of each component.
    """

    def __init__(self, components: list[tuple[str, AudioSource, float]]):
        if not components:
            raise DataError("mixed source: no components")
        rates = {src.sample_rate for _, src, _ in components}
        if len(rates) != 1:
            shown = ", ".join(f"{name} {src.sample_rate} Hz" for name, src, _ in components)
            raise DataError(f"mixed source: components must share one sample rate ({shown})")
        self.sample_rate = rates.pop()
        self.names = [name for name, _, _ in components]
        self._sources = [src for _, src, _ in components]
        sizes = [len(src) for src in self._sources]
        self._offsets = np.cumsum([0, *sizes])
        self.keys = [f"{name}/{k}" for name, src, _ in components for k in src.keys]
        self.speakers = [f"{name}/{s}" for name, src, _ in components for s in src.speakers]
        self.num_samples = np.concatenate([src.num_samples for src in self._sources]).astype(
            np.int64
        )
        total = sum(w for _, _, w in components)
        self.weights = [w / total for _, _, w in components]
        self.epoch_table = weighted_epoch_table(sizes, self.weights)
        shares = ", ".join(f"{n} {w:.2f}" for n, w in zip(self.names, self.weights, strict=True))
        self._finish_init(f"mixed ({shares})")

    def component_of(self, index: int) -> int:
        """Which component utterance `index` belongs to."""
        return int(np.searchsorted(self._offsets, index, side="right") - 1)

    def _local(self, i: int) -> tuple[AudioSource, int]:
        c = self.component_of(i)
        return self._sources[c], i - int(self._offsets[c])

    def _load(self, i: int) -> np.ndarray:
        src, j = self._local(i)
        return src[j]

    def _load_segment(self, i: int, start: int, stop: int) -> np.ndarray:
        src, j = self._local(i)
        return src.read_segment(j, start, stop)
