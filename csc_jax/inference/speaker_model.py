"""SpeakerModel: a trained model applied to files or arrays of any length.

Inputs are paths (any wav/flac/ogg, any rate, any channel count: averaged to mono and
resampled to the model rate, see ``csc_jax.audio_io``) or 1-D float arrays already at the
model rate. Silent or near-silent inputs (RMS below -60 dBFS, ``audio_io.check_not_silent``)
raise a DataError naming them: there is no speaker in them.

Length bucketing (a bounded number of compilations). Every input is cut into *pieces* of at
most ``max_seconds``: an input of T samples longer than that is split into
``n = ceil(T / cap)`` near-equal consecutive pieces (no tiny tail). Each piece is wrap-padded
(``np.pad(mode='wrap')``, as the evaluation protocol's ``fit_length``) up to the next multiple of
``bucket_seconds`` and pieces of one bucket length are run together in batches whose row count
is ``batch_size``, or the next power of two below it for a last partial batch (zero rows pad the
batch and are dropped). So at most ``len(buckets) * (log2(batch_size) + 1)`` shapes are compiled
per function, whatever the input lengths; ``SpeakerModel.compiled_shapes`` records every shape
that was traced. The embedding of a split input is the mean of its pieces' unit embeddings,
renormalised; the extraction conditioning vector of a split enrollment is the mean of its pieces'
global vectors; a split mixture is extracted piece by piece and the pieces are concatenated.

The model itself runs through :class:`~csc_jax.inference.batched.BatchedModel`, the jitted
wrapper the evaluation protocol uses too.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any

import numpy as np

from csc_jax import audio_io, io_utils
from csc_jax.config.schema import frontend_window
from csc_jax.errors import BadAudioFileError, DataError

DEFAULT_BUCKET_SECONDS = 0.5
DEFAULT_MAX_SECONDS = 6.0
MIN_SECONDS = 0.1  # shorter inputs carry too few frames for a speaker vector

Input = Any  # str | os.PathLike | np.ndarray (T,)


@dataclasses.dataclass(frozen=True)
class _Piece:
    item: int  # input index
    start: int  # [start, stop) in the input at the model rate
    stop: int
    length: int  # bucket length the piece is wrap-padded to


def _next_pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


class SpeakerModel:
    """A trained CSC-family model with file I/O, length bucketing and batching.

    Args:
      config: the run's ConfigDict (from config.json).
      model, params: the Flax module and its parameters.
      step: the checkpoint step they were restored from.
      bucket_seconds, max_seconds: length bucketing (module docstring).

    Attributes:
      config, step: as given.
      sample_rate: model rate in Hz; arrays passed in must be at this rate.
      embedding_dim: D.
      batched: the :class:`BatchedModel` every model call goes through.
      model, params: the Flax module and its parameters (those of ``batched``).
      bucket: bucket length in samples; cap: longest piece in samples (a multiple of bucket).
      compiled_shapes: set of ``(function, rows, samples)`` tuples, one per traced shape.
    """

    def __init__(
        self,
        config,
        model,
        params,
        step: int,
        *,
        bucket_seconds: float = DEFAULT_BUCKET_SECONDS,
        max_seconds: float = DEFAULT_MAX_SECONDS,
    ):
        from csc_jax.inference.batched import BatchedModel  # JAX, imported when a model is built

        self.config, self.step = config, int(step)
        self.batched = BatchedModel(model, params)
        self.sample_rate = int(config.data.sample_rate)
        self.embedding_dim = int(config.model.speaker_dim)
        if not bucket_seconds > 0 or not max_seconds >= bucket_seconds:
            raise ValueError(
                f"need 0 < bucket_seconds <= max_seconds, got bucket_seconds={bucket_seconds}, "
                f"max_seconds={max_seconds}"
            )
        self.bucket = max(1, int(round(bucket_seconds * self.sample_rate)))
        self.cap = self.bucket * max(1, int(max_seconds * self.sample_rate) // self.bucket)
        self.min_samples = max(
            frontend_window(config), int(math.ceil(MIN_SECONDS * self.sample_rate))
        )

    @property
    def model(self):
        return self.batched.model

    @property
    def params(self):
        return self.batched.params

    @property
    def compiled_shapes(self) -> set[tuple[str, int, int]]:
        return self.batched.compiled_shapes

    def __repr__(self) -> str:
        return (
            f"SpeakerModel({self.config.method}, step {self.step}, {self.sample_rate} Hz, "
            f"D={self.embedding_dim})"
        )

    # ---------------------------------------------------------------- inputs

    def _items(self, inputs) -> list[Input]:
        if isinstance(inputs, (str, os.PathLike)):
            return [inputs]
        if isinstance(inputs, np.ndarray):
            if inputs.ndim == 1:
                return [inputs]
            if inputs.ndim == 2:
                return list(inputs)
            raise DataError(f"expected (T,) or (N, T) waveforms, got shape {inputs.shape}")
        items = list(inputs)
        if not items:
            raise DataError("no inputs given")
        return items

    @staticmethod
    def _name(item: Input, i: int) -> str:
        return os.fspath(item) if isinstance(item, (str, os.PathLike)) else f"waveform #{i}"

    def _length(self, item: Input, i: int) -> int:
        """Samples at the model rate (header only for files); checks the minimum length."""
        if isinstance(item, (str, os.PathLike)):
            n = audio_io.audio_length(item, self.sample_rate)
        else:
            a = np.asarray(item)
            if a.ndim != 1:
                raise DataError(f"{self._name(item, i)}: expected a (T,) waveform, got {a.shape}")
            if not np.issubdtype(a.dtype, np.floating):
                # int16 PCM passed as is would be 32768 times too loud.
                raise DataError(
                    f"{self._name(item, i)}: expected float samples in [-1, 1], got {a.dtype} "
                    "(divide integer PCM by its full scale, e.g. 32768 for int16)"
                )
            n = int(a.shape[0])
        if n < self.min_samples:
            raise DataError(
                f"{self._name(item, i)}: {n} samples at {self.sample_rate} Hz is too short; "
                f"need at least {self.min_samples} ({MIN_SECONDS} s and one front-end frame of "
                f"{frontend_window(self.config)} samples)"
            )
        return n

    def _read(self, item: Input, i: int, length: int) -> np.ndarray:
        if isinstance(item, (str, os.PathLike)):
            x = audio_io.read_audio(item, self.sample_rate)
        else:
            x = np.asarray(item, np.float32)
            if not np.isfinite(x).all():
                raise DataError(f"{self._name(item, i)}: contains NaN/Inf samples")
        if x.shape[0] != length:  # the file changed between header and decode
            raise BadAudioFileError(
                self._name(item, i), f"decoded {x.shape[0]} samples, expected {length}"
            )
        audio_io.check_not_silent(x, self._name(item, i))
        return x

    def _pieces(self, item: int, length: int) -> list[_Piece]:
        n = -(-length // self.cap)
        bounds = [k * length // n for k in range(n + 1)]
        out = []
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            padded = min(self.cap, -(-(b - a) // self.bucket) * self.bucket)
            out.append(_Piece(item, a, b, padded))
        return out

    def _run(
        self,
        method: str,
        items: list[Input],
        batch_size: int,
        progress: bool | None,
        desc: str,
    ) -> np.ndarray:
        """Per-item mean over its pieces of ``method``'s (rows, D) outputs: (N, D) float32."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        lengths = [self._length(x, i) for i, x in enumerate(items)]
        pieces = [p for i, n in enumerate(lengths) for p in self._pieces(i, n)]
        pieces.sort(key=lambda p: (p.length, p.item, p.start))
        last_use = {p.item: k for k, p in enumerate(pieces)}
        sums = np.zeros((len(items), self.embedding_dim), np.float64)
        counts = np.zeros(len(items), np.int64)
        cache: dict[int, np.ndarray] = {}
        if progress is None:
            progress = len(items) > 64
        from tqdm.auto import tqdm

        with tqdm(total=len(pieces), desc=desc, unit="seg", disable=not progress) as bar:
            k = 0
            while k < len(pieces):
                length = pieces[k].length
                group = [pieces[k]]
                while (
                    k + len(group) < len(pieces)
                    and len(group) < batch_size
                    and pieces[k + len(group)].length == length
                ):
                    group.append(pieces[k + len(group)])
                rows = batch_size if len(group) == batch_size else _next_pow2(len(group))
                rows = min(rows, batch_size)
                batch = np.zeros((rows, length), np.float32)
                for r, p in enumerate(group):
                    if p.item not in cache:
                        cache[p.item] = self._read(items[p.item], p.item, lengths[p.item])
                    seg = cache[p.item][p.start : p.stop]
                    batch[r] = np.pad(seg, (0, length - seg.shape[0]), mode="wrap")
                out = self.batched(method, batch)[: len(group)]
                for r, p in enumerate(group):
                    sums[p.item] += out[r]
                    counts[p.item] += 1
                    if last_use[p.item] == k + r:
                        cache.pop(p.item, None)
                k += len(group)
                bar.update(len(group))
        return (sums / counts[:, None]).astype(np.float32)

    # ---------------------------------------------------------------- API

    def embed(self, inputs, *, batch_size: int = 16, progress: bool | None = None) -> np.ndarray:
        """Speaker embeddings (the K=1 global speaker vector), unit norm.

        Args:
          inputs: paths (any format/rate/channels) or (T,) float arrays at ``sample_rate``
            (a list, one path/array, or an (N, T) array).
          batch_size: rows per compiled call.
          progress: tqdm bar; None shows it for more than 64 inputs.

        Returns:
          (N, D) float32, L2-normalised, in input order.
        """
        items = self._items(inputs)
        e = self._run("embed", items, batch_size, progress, "embed")
        return e / np.maximum(np.linalg.norm(e, axis=-1, keepdims=True), 1e-12)

    def score(self, a: Input, b: Input) -> float:
        """Cosine score between the embeddings of two utterances (paths or arrays)."""
        e = self.embed([a, b], batch_size=2)
        return float(np.dot(e[0], e[1]))

    def global_vector(self, enrollment: Input) -> np.ndarray:
        """(D,) float32 unnormalised global vector: the extraction conditioning."""
        return self._run("global_vectors", self._items(enrollment)[:1], 1, False, "enroll")[0]

    def extract(self, mixture: Input, enrollment: Input, *, rescale: bool = True) -> np.ndarray:
        """Extract the enrolled speaker from a mixture.

        The mixture (any length) is split into pieces of at most ``cap`` samples, each
        wrap-padded to its bucket length, extracted conditioned on the enrollment's global
        vector and cropped back; the result has exactly the mixture's length.

        Args:
          mixture: path or (T,) array at ``sample_rate``.
          enrollment: path or (T',) array of the target speaker alone.
          rescale: scale each piece by the least-squares gain onto the mixture piece (the
            model is trained with scale-invariant SI-SNR, so its output level is arbitrary;
            this matches the target's level in the mixture and does not change SI-SNR).

        Returns:
          (T,) float32 at ``sample_rate``.
        """
        vector = self.global_vector(enrollment)[None, :]
        length = self._length(mixture, 0)
        x = self._read(mixture, 0, length)
        out = np.empty(length, np.float32)
        for p in self._pieces(0, length):
            seg = x[p.start : p.stop]
            padded = np.pad(seg, (0, p.length - seg.shape[0]), mode="wrap")[None, :]
            est = self.batched("extract", padded, vector)[0, : seg.shape[0]]
            if rescale:
                energy = float(np.dot(est, est))
                est = est * np.float32(float(np.dot(seg, est)) / energy if energy > 0 else 0.0)
            out[p.start : p.stop] = est
        return out

    def verify(
        self,
        trial_list_path: str | os.PathLike,
        audio_root: str | os.PathLike,
        *,
        scores_out: str | os.PathLike | None = None,
        overwrite: bool = False,
        batch_size: int = 16,
        progress: bool | None = None,
    ) -> dict:
        """Score a VoxCeleb-format trial list (``label enroll test`` lines, keys under root).

        Every distinct file is embedded once; a trial's score is the cosine of its two
        embeddings.

        Args:
          trial_list_path: the trial list.
          audio_root: folder the trial keys are relative to.
          scores_out: if given, write ``enroll test score`` lines there (refuses to replace an
            existing file unless ``overwrite``).
          batch_size, progress: as in :meth:`embed`.

        Returns:
          dict: 'eer' (percent, as in results.json), 'min_dcf' (p_target = config.eval.p_target),
          'num_trials', 'num_target', 'scores' (N,) float32. 'eer' and 'min_dcf' are None when
          the list has only one class of trial.
        """
        from csc_jax import metrics
        from csc_jax.data import trials as trials_lib

        if scores_out is not None:
            io_utils.check_output_path(scores_out, overwrite)
        try:
            trials = trials_lib.read_trials(trial_list_path)
        except DataError:
            raise
        except ValueError as e:  # a malformed line, or undecodable bytes (no file name)
            text, name = str(e), os.fspath(trial_list_path)
            raise DataError(text if name in text else f"trial list {name}: {text}") from e
        keys = sorted({k for t in trials for k in (t.enroll, t.test)})
        root = os.fspath(audio_root)
        paths = [os.path.join(root, k) for k in keys]
        missing = [p for p in paths if not os.path.isfile(p)]
        if missing:
            more = f" (and {len(missing) - 3} more)" if len(missing) > 3 else ""
            raise FileNotFoundError(
                f"{len(missing)} audio file(s) of trial list {os.fspath(trial_list_path)} not "
                f"found under {root}: {', '.join(missing[:3])}{more}"
            )
        emb = self.embed(paths, batch_size=batch_size, progress=progress)
        row = {k: i for i, k in enumerate(keys)}
        a = emb[[row[t.enroll] for t in trials]]
        b = emb[[row[t.test] for t in trials]]
        scores = np.sum(a * b, axis=-1).astype(np.float32)
        labels = np.array([t.label for t in trials])
        result: dict = {
            "eer": None,
            "min_dcf": None,
            "num_trials": len(trials),
            "num_target": int(labels.sum()),
            "p_target": float(self.config.eval.p_target),
            "scores": scores,
        }
        if 0 < labels.sum() < len(labels):
            result["eer"] = 100.0 * metrics.eer(scores, labels)[0]
            result["min_dcf"] = metrics.min_dcf(scores, labels, p_target=result["p_target"])[0]
        if scores_out is not None:
            with io_utils.atomic_output(scores_out, overwrite) as tmp:
                with open(tmp, "w", encoding="utf-8") as f:
                    for t, s in zip(trials, scores, strict=True):
                        f.write(f"{t.enroll} {t.test} {float(s):.6f}\n")
        return result
