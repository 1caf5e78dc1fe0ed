"""grain host pipeline: clean random crops for CSC training (mixing happens on the device).

Each batch is ``{'target': (B_local, K, T) float32, 'interferer': (B_local, K, T) float32}``
with ``B_local = batch_size // shard_count``, K = `num_conditions`, T = `segment_samples`:

* ``target[b, k]``: K independent random crops of ONE utterance u;
* ``interferer[b, k]``: a random crop of a random utterance other than u, drawn independently
  per k (by index, never by speaker label: training is self-supervised);
* utterances shorter than T are tiled (repeat-padded) from a random phase before cropping.

Optional augmentation (``augment``, ``config.data.augment``; csc_jax/data/augmentation.py),
drawn from a second Generator seeded with (seed, p), so the stream is still a pure function of
(seed, p): the target utterance is resampled by one speed factor (a pseudo-speaker) before its
K views are cropped, each interferer by its own; each interferer may be babble (a sum of
several other utterances at equal RMS); each target view and each interferer then goes
through its own random channel (reverb, EQ, band limits, telephone band). With ``augment``
None the crop Generator's draws, and so the stream, are exactly those without augmentation.
A source with an ``epoch_table`` (a weighted mixture of corpora) shuffles its table of
utterance slots instead of the utterance indices, and draws interferers from the table too.

Order and determinism. The pipeline is::

    MapDataset.range(len(source))       # utterance indices; crops need the index (interferer
      .shuffle(seed).repeat()           #   != target, cheap partial reads), not the waveform
      .map_with_index(_CropExample)     # rng = f(seed, global position)
      [shard_index::shard_count]        # per-position sharding, BEFORE batching
      .batch(B_local, drop_remainder=True)
      .to_iter_dataset(ReadOptions)     # thread prefetch; .mp_prefetch() when num_workers > 0

an infinite stream, reshuffled every epoch. Global position p holds utterance
``shuffle_epoch(p // N)[p % N]`` and its crops come from a numpy Generator seeded with
``(seed, p)``, so every element is a pure function of (seed, p), independent of threads,
worker processes and shard_count. Global step t covers positions ``[t*B, (t+1)*B)``; shard s
gets rows ``p = t*B + s + shard_count*j`` (j < B_local). Hence, for every step::

    single_shard_batch[s::shard_count] == shard_s_batch          # for each s
    np.concatenate(shard batches) == single_shard_batch[perm]     # interleaved order

The shards are disjoint and together cover the global stream. The device loss is a per-example
mean, so this row permutation across hosts does not change results.

Checkpointing. ``iterator.get_state()`` is a JSON-serialisable dict (``{'next_index': n}``
without worker processes); ``set_state`` resumes exactly, mid-epoch. With orbax, grain 0.2.18
registers ``grain.checkpoint.CheckpointSave/CheckpointRestore`` (handler
``grain.checkpoint.CheckpointHandler``, one ``process_<i>-of-<n>.json`` per process) as
``CheckpointArgs``, so they compose with the train state without extra handler setup::

    import grain
    import orbax.checkpoint as ocp

    manager = ocp.CheckpointManager(workdir / "checkpoints",
                                    options=ocp.CheckpointManagerOptions(max_to_keep=2))
    manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(train_state),
        data_iter=grain.checkpoint.CheckpointSave(iterator)))
    manager.wait_until_finished()
    ...
    iterator = make_train_iterator(source, ...)   # same arguments as the saved run
    restored = manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_train_state),
        data_iter=grain.checkpoint.CheckpointRestore(iterator)))
    train_state, iterator = restored.state, restored.data_iter   # iterator restored in place

(tests/test_pipeline.py::test_orbax_checkpoint_manager_round_trip runs exactly this.) Without
orbax, `iterator_state_to_json` / `iterator_state_from_json` give the same text.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import grain
import numpy as np
from absl import flags

from csc_jax.data import augmentation
from csc_jax.data.augmentation import Augmentation
from csc_jax.data.sources import AudioSource

# Separates the crop random stream from any other stream seeded with the same (seed, position).
_CROP_STREAM = 0x0C5C
# The augmentation stream (speed factors, channels, babble), likewise.
_AUGMENT_STREAM = 0xA06
# Extra resampled samples on each side of a speed-perturbed interferer window.
_SPEED_MARGIN = 64


def _validate(
    source: AudioSource,
    batch_size: int,
    num_conditions: int,
    segment_samples: int,
    seed: int,
    shard_index: int,
    shard_count: int,
    num_workers: int,
) -> int:
    for name, value in (
        ("batch_size", batch_size),
        ("num_conditions", num_conditions),
        ("segment_samples", segment_samples),
        ("shard_count", shard_count),
    ):
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not 0 <= shard_index < shard_count:
        raise ValueError(f"shard_index must be in [0, {shard_count}), got {shard_index}")
    if batch_size % shard_count:
        raise ValueError(
            f"batch_size {batch_size} is not divisible by shard_count {shard_count} (the number "
            "of data-loading processes)"
        )
    if not 0 <= seed < 2**32:  # grain's shuffle seed range
        raise ValueError(f"seed must be in [0, 2**32), got {seed}")
    if num_workers < 0:
        raise ValueError(f"num_workers must be >= 0, got {num_workers}")
    if len(source) < 2:
        raise ValueError(f"{source!r}: need at least 2 utterances to draw interferers")
    return batch_size // shard_count


def _crop(wave: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    """Random (length,) window of float32 (L,) `wave`; short waves are tiled from a random phase."""
    n = wave.shape[0]
    if n >= length:
        start = int(rng.integers(0, n - length + 1))
        return wave[start : start + length]
    start = int(rng.integers(0, n))
    reps = -(-(start + length) // n)
    return np.tile(wave, reps)[start : start + length]


class _CropExample(grain.transforms.MapWithIndex):
    """(global position, slot) -> {'target': (K, T), 'interferer': (K, T)} float32.

    A slot is an utterance index, or an index into the source's ``epoch_table`` (a weighted
    mixture of corpora, csc_jax/data/sources/mixed.py), which then also weights the interferers.
    """

    def __init__(
        self,
        source: AudioSource,
        num_conditions: int,
        segment_samples: int,
        seed: int,
        augment: Augmentation | None = None,
    ):
        self.source = source
        self.num_conditions = int(num_conditions)
        self.segment_samples = int(segment_samples)
        self.seed = int(seed)
        self.augment = augment
        self.table = getattr(source, "epoch_table", None)

    def _interferer_crop(self, index: int, rng: np.random.Generator, factor: float = 1.0):
        n = int(self.source.num_samples[index])
        t = self.segment_samples
        if factor != 1.0:
            # Resample a window long enough for T samples plus margins that absorb the
            # resampler's edge transients; short utterances are resampled whole and tiled.
            need = augmentation.samples_needed(t, factor, _SPEED_MARGIN)
            if n >= need:
                start = int(rng.integers(0, n - need + 1))
                window = self.source.read_segment(index, start, start + need)
                return augmentation.speed_perturb(window, factor)[_SPEED_MARGIN : _SPEED_MARGIN + t]
            return _crop(augmentation.speed_perturb(self.source[index], factor), t, rng)
        if n >= t:
            # Reads only the window where the source can (folder files at the model rate).
            start = int(rng.integers(0, n - t + 1))
            return self.source.read_segment(index, start, start + t)
        return _crop(self.source[index], t, rng)

    def _draw_other(self, rng: np.random.Generator, exclude: set[int]) -> int:
        """An utterance not in `exclude`, weighted by the epoch table (rejection sampling)."""
        while True:
            j = (
                int(self.table[rng.integers(0, len(self.table))])
                if self.table is not None
                else int(rng.integers(0, len(self.source)))
            )
            if j not in exclude:
                return j

    def _others(self, rng: np.random.Generator, utterance: int) -> list[int]:
        k = self.num_conditions
        if self.table is None:
            # Uniform over the other N - 1 utterances: draw from N - 1 and skip the target.
            others = rng.integers(0, len(self.source) - 1, size=k)
            return [int(j) for j in others + (others >= utterance)]
        return [self._draw_other(rng, {utterance}) for _ in range(k)]

    def _interferer(self, j: int, utterance: int, rng, arng) -> np.ndarray:
        """Interferer crop (T,) of utterance j: its own speed factor, and with probability
        ``babble_prob`` the sum of 2-4 (``babble_speakers``) distinct other utterances at equal
        RMS, j among them."""
        aug = self.augment
        if aug is None:
            return self._interferer_crop(j, rng)
        if aug.babble_prob > 0 and arng.random() < aug.babble_prob:
            lo, hi = aug.babble_speakers
            count = min(int(arng.integers(lo, hi + 1)), len(self.source) - 1)
            chosen = [j]
            while len(chosen) < count:
                chosen.append(self._draw_other(arng, {utterance, *chosen}))
            crops = [
                augmentation.unit_rms(
                    self._interferer_crop(i, rng, augmentation.draw_speed_factor(aug, arng))
                )
                for i in chosen
            ]
            return np.sum(crops, axis=0)
        return self._interferer_crop(j, rng, augmentation.draw_speed_factor(aug, arng))

    def map_with_index(self, index: int, element: Any) -> dict[str, np.ndarray]:
        rng = np.random.default_rng((self.seed, int(index), _CROP_STREAM))
        aug = self.augment
        # Augmentation draws its own stream, so augmentation off leaves the crops as they were.
        arng = np.random.default_rng((self.seed, int(index), _AUGMENT_STREAM)) if aug else None
        utterance = int(element) if self.table is None else int(self.table[int(element)])
        k, t = self.num_conditions, self.segment_samples
        wave = self.source[utterance]
        if aug is not None:
            # One pseudo-speaker per example: the K views share the factor.
            wave = augmentation.speed_perturb(wave, augmentation.draw_speed_factor(aug, arng))
        target = np.stack([_crop(wave, t, rng) for _ in range(k)])
        others = self._others(rng, utterance)
        interferer = np.stack([self._interferer(j, utterance, rng, arng) for j in others])
        if aug is not None and aug.channel:
            # A channel per view and per interferer. The separation loss's clean reference is
            # this channel-augmented view (the device mixes and scores exactly what leaves
            # here): the K views agree on the speaker, not on the recording chain.
            rate = self.source.sample_rate
            target = np.stack([augmentation.random_channel(x, aug, rate, arng) for x in target])
            interferer = np.stack(
                [augmentation.random_channel(x, aug, rate, arng) for x in interferer]
            )
        for name, x in (("target", target), ("interferer", interferer)):
            if x.shape != (k, t):
                raise ValueError(
                    f"{name} crops of {self.source.keys[utterance]!r} have shape {x.shape}, "
                    f"expected {(k, t)}"
                )
        return {
            "target": target.astype(np.float32, copy=False),
            "interferer": interferer.astype(np.float32, copy=False),
        }


def make_train_dataset(
    source: AudioSource,
    *,
    batch_size: int,
    num_conditions: int,
    segment_samples: int,
    seed: int,
    shard_index: int = 0,
    shard_count: int = 1,
    num_workers: int = 0,
    read_threads: int = 2,
    prefetch_batches: int = 4,
    augment: Augmentation | None = None,
) -> grain.IterDataset:
    """Infinite training stream of this process's shard (see the module docstring for order).

    Args:
      source: any AudioSource with >= 2 utterances.
      batch_size: GLOBAL batch size B (target utterances per step, over all processes).
      num_conditions: K crops (interfering conditions) per target utterance.
      segment_samples: crop length T in samples at ``source.sample_rate``.
      seed: in [0, 2**32); same seed -> identical stream.
      shard_index, shard_count: this process and the number of data-loading processes;
        ``batch_size % shard_count == 0``.
      num_workers: grain worker processes (0: in-process); does not change the stream.
      read_threads, prefetch_batches: per-process reader threads and prefetched batches.
      augment: pseudo-speakers, channels and babble (csc_jax/data/augmentation.py), drawn from
        a stream seeded by (seed, position) like the crops; None: clean crops.

    Returns:
      grain.IterDataset of ``{'target', 'interferer'}``: (B // shard_count, K, T) float32.
    """
    b_local = _validate(
        source,
        batch_size,
        num_conditions,
        segment_samples,
        seed,
        shard_index,
        shard_count,
        num_workers,
    )
    # A weighted mixture of corpora shuffles its epoch table of utterance slots instead.
    table = getattr(source, "epoch_table", None)
    slots = len(source) if table is None else len(table)
    ds = grain.MapDataset.range(slots).shuffle(seed=seed).repeat()
    ds = ds.map_with_index(_CropExample(source, num_conditions, segment_samples, seed, augment))
    ds = ds[shard_index::shard_count]
    ds = ds.batch(b_local, drop_remainder=True)
    iter_ds = ds.to_iter_dataset(
        grain.ReadOptions(num_threads=read_threads, prefetch_buffer_size=prefetch_batches)
    )
    if num_workers > 0:
        # grain 0.2.18 reads an absl flag when starting workers (with JAX installed) and fails
        # in programs that never parse flags (google/grain#1355, fixed after 0.2.18); flags keep
        # their defaults.
        if not flags.FLAGS.is_parsed():
            flags.FLAGS.mark_as_parsed()
        # Workers take whole batches round-robin, so the output order is unchanged.
        iter_ds = iter_ds.mp_prefetch(
            grain.MultiprocessingOptions(num_workers=num_workers, per_worker_buffer_size=2)
        )
    return iter_ds


def make_train_iterator(source: AudioSource, **kwargs: Any) -> grain.DatasetIterator:
    """``iter(make_train_dataset(source, **kwargs))`` (same keyword arguments): an iterator
    with get_state() / set_state() for checkpointing."""
    return iter(make_train_dataset(source, **kwargs))


def iterator_state_to_json(state: dict[str, Any] | bytes) -> str:
    """grain iterator state (dict, or bytes from grain.DataLoader) -> JSON text."""
    if isinstance(state, bytes | bytearray):
        return bytes(state).decode("utf-8")
    return json.dumps(state, sort_keys=True)


def iterator_state_from_json(text: str) -> dict[str, Any]:
    """Inverse of `iterator_state_to_json` for DatasetIterator states (pass to set_state)."""
    state = json.loads(text)
    if not isinstance(state, dict):
        raise TypeError(f"grain iterator state must be a JSON object, got {type(state).__name__}")
    return state


def measure_throughput(iterator: Any, num_batches: int) -> float:
    """Crops per second over `num_batches` batches, after one untimed warm-up batch.

    A crop is one (T,) row of 'target' or 'interferer', so a batch counts 2 * B_local * K.
    Consumes ``num_batches + 1`` batches from `iterator`.
    """
    if num_batches < 1:
        raise ValueError(f"num_batches must be >= 1, got {num_batches}")
    next(iterator)
    crops = 0
    start = time.perf_counter()
    for _ in range(num_batches):
        batch = next(iterator)
        crops += sum(int(np.prod(batch[k].shape[:2])) for k in ("target", "interferer"))
    elapsed = time.perf_counter() - start
    return crops / max(elapsed, sys.float_info.min)
