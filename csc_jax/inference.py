"""Use a trained model: speaker embeddings, verification scores and target-speaker extraction.

Python::

    import csc_jax
    model = csc_jax.load("runs/demo")              # a workdir, its checkpoints/ or checkpoints/<n>
    emb = model.embed(["a.wav", "b.flac"])         # (2, D) float32, unit norm
    model.score("a.wav", "b.flac")                 # cosine score
    model.verify("trials.txt", "wav_root/")        # {'eer': %, 'min_dcf': ..., 'num_trials': ...}
    target = model.extract("mix.wav", "enroll.wav")  # (T,) float32 at model.sample_rate

Command line (through ``eval.py`` or the installed ``csc-jax`` script)::

    python eval.py embed   --workdir W --out emb.npz FILE... | --list files.txt
    python eval.py score   --workdir W --trials trials.txt --audio_root DIR --out scores.txt
    python eval.py extract --workdir W --mixture mix.wav --enrollment enr.wav --out target.wav

Inputs are paths (any wav/flac/ogg, any rate, any channel count: averaged to mono and
resampled to the model rate, see ``csc_jax.audio_io``) or 1-D float arrays already at the
model rate.

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
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from csc_jax import audio_io

DEFAULT_BUCKET_SECONDS = 0.5
DEFAULT_MAX_SECONDS = 6.0
MIN_SECONDS = 0.1  # shorter inputs carry too few frames for a speaker vector
SUBCOMMANDS = ("embed", "score", "extract")

Input = Any  # str | os.PathLike | np.ndarray (T,)


class CheckpointMismatchError(ValueError):
    """The checkpoint's parameters do not fit the model described by the workdir's config.json."""


# ----------------------------------------------------------------------------- loading


def _resolve_workdir(path: str | os.PathLike, step: int | None) -> tuple[str, int | None]:
    """(workdir, step) from a workdir, its checkpoints/ directory or a step dir checkpoints/<n>."""
    given = os.fspath(path)
    path = os.path.abspath(given)
    if not os.path.exists(path):
        raise FileNotFoundError(f"model path {given} does not exist")
    if os.path.isfile(os.path.join(path, "config.json")):
        return path, step
    parent = os.path.dirname(path)
    if os.path.basename(path) == "checkpoints" and os.path.isfile(
        os.path.join(parent, "config.json")
    ):
        return parent, step
    grand = os.path.dirname(parent)
    name = os.path.basename(path)
    if (
        name.isdigit()
        and os.path.basename(parent) == "checkpoints"
        and os.path.isfile(os.path.join(grand, "config.json"))
    ):
        if step is not None and int(step) != int(name):
            raise ValueError(f"model path {given} is checkpoint step {int(name)} but step={step}")
        return grand, int(name)
    raise FileNotFoundError(
        f"no config.json for model path {given}: expected a training workdir (config.json + "
        "checkpoints/), its checkpoints/ directory, or a step directory checkpoints/<n>"
    )


def read_config(workdir: str | os.PathLike):
    """The validated ConfigDict saved by training in ``<workdir>/config.json``.

    Keys the saved file lacks (added to the schema after the run) take their defaults from
    ``csc_jax.config.base_config``; unknown keys or invalid values raise ConfigError naming
    the file and key.
    """
    from csc_jax import config as config_lib

    path = os.path.join(os.fspath(workdir), "config.json")
    try:
        with open(path, encoding="utf-8") as f:
            saved = json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} not found: not a training workdir") from None
    except (OSError, json.JSONDecodeError) as e:
        raise config_lib.ConfigError(f"cannot read {path}: {e}") from e
    if not isinstance(saved, dict):
        raise config_lib.ConfigError(f"{path}: expected a JSON object, got {type(saved).__name__}")
    config = config_lib.base_config()
    flat = config_lib.flatten(saved)
    unknown = []
    for key, value in flat.items():
        *parents, last = key.split(".")
        node = config
        try:
            for p in parents:
                node = node[p]
            default = node[last]
        except (KeyError, AttributeError, TypeError):
            unknown.append(key)
            continue
        if isinstance(default, tuple) and isinstance(value, list):
            value = tuple(value)  # JSON has no tuples
        try:
            node[last] = value
        except (TypeError, ValueError) as e:
            raise config_lib.ConfigError(f"{path}: {key}={value!r}: {e}") from e
    if unknown:
        raise config_lib.ConfigError(
            f"{path}: unknown config key(s) {', '.join(sorted(unknown))} (saved by a different "
            "version of csc-jax?)"
        )
    try:
        config_lib.validate_config(config)
    except config_lib.ConfigError as e:
        raise config_lib.ConfigError(f"{path}: {e}") from e
    return config


def _checkpoint_steps(workdir: str) -> list[int]:
    ckpt = os.path.join(workdir, "checkpoints")
    if not os.path.isdir(ckpt):
        return []
    # Orbax renames a step directory to its number only once the save is complete.
    return sorted(
        int(n)
        for n in os.listdir(ckpt)
        if n.isdigit() and os.path.isdir(os.path.join(ckpt, n, "state"))
    )


def _checkpoint_param_shapes(step_dir: str) -> dict[str, tuple[int, ...]]:
    """Parameter shapes stored in ``<step_dir>/state`` (orbax metadata; no array is read)."""
    import logging

    import jax
    import orbax.checkpoint as ocp

    from csc_jax.training.checkpointing import CheckpointError

    absl_logger = logging.getLogger("absl")
    level = absl_logger.level
    absl_logger.setLevel(logging.ERROR)  # orbax warns about an optional metadata file
    try:
        meta = ocp.StandardCheckpointer().metadata(os.path.join(step_dir, "state"))
    except Exception as e:
        raise CheckpointError(f"cannot read checkpoint metadata in {step_dir}: {e}") from e
    finally:
        absl_logger.setLevel(level)
    tree = getattr(meta, "item_metadata", meta)
    tree = getattr(tree, "tree", tree)
    if not isinstance(tree, dict) or "params" not in tree:
        raise CheckpointError(f"{step_dir}: not a csc-jax train state (no 'params')")
    return {
        jax.tree_util.keystr(k): tuple(int(d) for d in v.shape)
        for k, v in jax.tree_util.tree_leaves_with_path(tree["params"])
    }


def _check_param_shapes(model, config, got: dict[str, tuple[int, ...]], where: str) -> None:
    """Raise CheckpointMismatchError unless ``got`` has exactly the config's parameter shapes."""
    import jax

    from csc_jax.config import segment_samples

    example = np.zeros((1, config.mixing.num_conditions, segment_samples(config)), np.float32)
    expected = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), example))["params"]
    want = {
        jax.tree_util.keystr(k): tuple(v.shape)
        for k, v in jax.tree_util.tree_leaves_with_path(expected)
    }
    problems = []
    for key in sorted(set(want) | set(got)):
        a, b = want.get(key), got.get(key)
        if a is None:
            problems.append(f"params{key} is in the checkpoint but not in the model")
        elif b is None:
            problems.append(f"params{key} is missing from the checkpoint")
        elif a != b:
            problems.append(f"params{key}: checkpoint {b} vs config {a}")
    if problems:
        more = f" (and {len(problems) - 4} more)" if len(problems) > 4 else ""
        raise CheckpointMismatchError(
            f"checkpoint {where} does not fit the model described by its config.json (were "
            f"model.* keys edited, or was it saved by another version of csc-jax?): "
            f"{'; '.join(problems[:4])}{more}"
        )


def load(
    path: str | os.PathLike,
    step: int | None = None,
    *,
    bucket_seconds: float = DEFAULT_BUCKET_SECONDS,
    max_seconds: float = DEFAULT_MAX_SECONDS,
) -> SpeakerModel:
    """Load a trained model for inference.

    Args:
      path: a training workdir (with config.json and checkpoints/), its checkpoints/ directory,
        or one step directory ``checkpoints/<n>``.
      step: checkpoint step (default: the latest complete one, or the step directory's).
      bucket_seconds: input lengths are wrap-padded up to multiples of this (module docstring).
      max_seconds: longest piece run at once; longer inputs are split.

    Returns:
      a :class:`SpeakerModel`.

    Raises:
      FileNotFoundError: no config.json / checkpoint at ``path`` (the message names it).
      csc_jax.config.ConfigError: config.json invalid.
      CheckpointMismatchError: the checkpoint's parameters differ from config.json's model.
      csc_jax.training.checkpointing.CheckpointError: the checkpoint cannot be read.
    """
    from csc_jax.models import model_from_config
    from csc_jax.training.checkpointing import restore_params

    workdir, step = _resolve_workdir(path, step)
    config = read_config(workdir)
    ckpt_dir = os.path.join(workdir, "checkpoints")
    available = _checkpoint_steps(workdir)
    if not available:
        raise FileNotFoundError(f"no complete checkpoint in {ckpt_dir}: train first")
    if step is None:
        step = available[-1]
    elif int(step) not in available:
        raise FileNotFoundError(
            f"checkpoint step {step} not found in {ckpt_dir} (available: {available})"
        )
    where = os.path.join(ckpt_dir, str(step))
    # Compare shapes from the metadata first: orbax's own mismatch errors are long and vague.
    _check_param_shapes(model_from_config(config), config, _checkpoint_param_shapes(where), where)
    model, params, step = restore_params(config, workdir, int(step))
    return SpeakerModel(
        config, model, params, int(step), bucket_seconds=bucket_seconds, max_seconds=max_seconds
    )


# ----------------------------------------------------------------------------- the model


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

    Attributes:
      config: the run's ConfigDict (from config.json).
      step: the restored checkpoint step.
      sample_rate: model rate in Hz; arrays passed in must be at this rate.
      embedding_dim: D.
      model, params: the Flax module and its parameters.
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
        import jax

        self.config, self.model, self.params, self.step = config, model, params, int(step)
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
            int(config.model.enc_kernel), int(math.ceil(MIN_SECONDS * self.sample_rate))
        )
        self.compiled_shapes: set[tuple[str, int, int]] = set()

        def traced(name: str, method):
            def fn(p, x, *rest):
                # Runs only while jax traces, i.e. once per new input shape.
                self.compiled_shapes.add((name,) + tuple(int(d) for d in x.shape))
                return model.apply({"params": p}, x, *rest, method=method)

            return jax.jit(fn)

        self._embed_fn = traced("embed", model.embed)
        self._vector_fn = traced("global_vectors", model.global_vectors)
        self._extract_fn = traced("extract", model.extract)

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
            raise ValueError(f"expected (T,) or (N, T) waveforms, got shape {inputs.shape}")
        items = list(inputs)
        if not items:
            raise ValueError("no inputs given")
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
                raise ValueError(f"{self._name(item, i)}: expected a (T,) waveform, got {a.shape}")
            if not np.issubdtype(a.dtype, np.floating):
                # int16 PCM passed as is would be 32768 times too loud.
                raise ValueError(
                    f"{self._name(item, i)}: expected float samples in [-1, 1], got {a.dtype} "
                    "(divide integer PCM by its full scale, e.g. 32768 for int16)"
                )
            n = int(a.shape[0])
        if n < self.min_samples:
            raise ValueError(
                f"{self._name(item, i)}: {n} samples at {self.sample_rate} Hz is too short; "
                f"need at least {self.min_samples} ({MIN_SECONDS} s and the encoder kernel of "
                f"{self.config.model.enc_kernel} samples)"
            )
        return n

    def _read(self, item: Input, i: int, length: int) -> np.ndarray:
        if isinstance(item, (str, os.PathLike)):
            x = audio_io.read_audio(item, self.sample_rate)
        else:
            x = np.asarray(item, np.float32)
            if not np.isfinite(x).all():
                raise ValueError(f"{self._name(item, i)}: contains NaN/Inf samples")
        if x.shape[0] != length:  # the file changed between header and decode
            raise audio_io.BadAudioFileError(
                self._name(item, i), f"decoded {x.shape[0]} samples, expected {length}"
            )
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
        fn: Callable,
        items: list[Input],
        batch_size: int,
        progress: bool | None,
        desc: str,
    ) -> np.ndarray:
        """Per-item mean over its pieces of ``fn(params, (rows, L))`` outputs: (N, D) float32."""
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
                out = np.asarray(fn(self.params, batch))[: len(group)]
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
        e = self._run(self._embed_fn, items, batch_size, progress, "embed")
        return e / np.maximum(np.linalg.norm(e, axis=-1, keepdims=True), 1e-12)

    def score(self, a: Input, b: Input) -> float:
        """Cosine score between the embeddings of two utterances (paths or arrays)."""
        e = self.embed([a, b], batch_size=2)
        return float(np.dot(e[0], e[1]))

    def global_vector(self, enrollment: Input) -> np.ndarray:
        """(D,) float32 unnormalised global vector: the extraction conditioning."""
        return self._run(self._vector_fn, self._items(enrollment)[:1], 1, False, "enroll")[0]

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
            est = np.asarray(self._extract_fn(self.params, padded, vector))[0, : seg.shape[0]]
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
            audio_io.check_output_path(scores_out, overwrite)
        trials = trials_lib.read_trials(trial_list_path)
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
            with audio_io.atomic_output(scores_out, overwrite) as tmp:
                with open(tmp, "w", encoding="utf-8") as f:
                    for t, s in zip(trials, scores, strict=True):
                        f.write(f"{t.enroll} {t.test} {float(s):.6f}\n")
        return result


# ----------------------------------------------------------------------------- command line


def _parser(prog: str) -> argparse.ArgumentParser:
    about = "Use a trained csc-jax model: embeddings, verification scores, target extraction."
    if prog == "eval.py":
        about += " Without a subcommand, eval.py runs the verification protocol (--help there)."
    p = argparse.ArgumentParser(prog=prog, description=about)
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp):
        sp.add_argument("--workdir", required=True, help="training workdir (or checkpoints dir)")
        sp.add_argument("--step", type=int, default=None, help="checkpoint step (default latest)")
        sp.add_argument("--out", required=True, help="output file")
        sp.add_argument("--overwrite", action="store_true", help="replace an existing --out")

    e = sub.add_parser("embed", help="speaker embeddings of audio files -> .npz (path -> (D,))")
    common(e)
    e.add_argument("files", nargs="*", help="audio files (wav/flac/..., any rate/channels)")
    e.add_argument("--list", help="text file with one audio path per line")
    e.add_argument("--batch_size", type=int, default=16)
    e.add_argument("--no_progress", action="store_true", help="no bar (default: >64 files)")

    s = sub.add_parser("score", help="score a trial list: 'enroll test score' lines + EER/minDCF")
    common(s)
    s.add_argument("--trials", required=True, help="VoxCeleb-format trial list")
    s.add_argument("--audio_root", required=True, help="folder the trial keys are relative to")
    s.add_argument("--batch_size", type=int, default=16)
    s.add_argument("--no_progress", action="store_true", help="no bar (default: >64 files)")

    x = sub.add_parser("extract", help="extract the enrolled speaker from a mixture -> 16-bit wav")
    common(x)
    x.add_argument("--mixture", required=True, help="audio with the target and interference")
    x.add_argument("--enrollment", required=True, help="clean audio of the target speaker")
    return p


def _read_list(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as f:
            lines = [ln.strip() for ln in f]
    except OSError as e:
        raise FileNotFoundError(f"cannot read --list {path}: {e.strerror}") from e
    files = [ln for ln in lines if ln and not ln.startswith("#")]
    if not files:
        raise ValueError(f"--list {path} names no files")
    return files


def _require_inputs(paths: Sequence[str]) -> None:
    for p in paths:
        if not os.path.isfile(p):
            raise FileNotFoundError(f"input file not found: {p}")


def _cmd_embed(args) -> None:
    files = list(args.files) + (_read_list(args.list) if args.list else [])
    if not files:
        raise ValueError("embed: give audio files or --list FILE")
    files = list(dict.fromkeys(files))  # one entry per path, first-seen order
    _require_inputs(files)
    audio_io.check_output_path(args.out, args.overwrite)
    model = load(args.workdir, args.step)
    emb = model.embed(
        files, batch_size=args.batch_size, progress=False if args.no_progress else None
    )
    with audio_io.atomic_output(args.out, args.overwrite) as tmp:
        with open(tmp, "wb") as f:  # a file object: np.savez would append '.npz' to a name
            np.savez(f, **dict(zip(files, emb, strict=True)))
    print(f"wrote {len(files)} embeddings (D={emb.shape[1]}, step {model.step}) to {args.out}")


def _cmd_score(args) -> None:
    _require_inputs([args.trials])
    if not os.path.isdir(args.audio_root):
        raise FileNotFoundError(f"--audio_root {args.audio_root} is not a directory")
    audio_io.check_output_path(args.out, args.overwrite)
    model = load(args.workdir, args.step)
    r = model.verify(
        args.trials,
        args.audio_root,
        scores_out=args.out,
        overwrite=args.overwrite,
        batch_size=args.batch_size,
        progress=False if args.no_progress else None,
    )
    print(f"wrote {r['num_trials']} scores to {args.out}")
    if r["eer"] is None:
        print("EER/minDCF not computed: the trial list needs both target and non-target trials")
    else:
        print(
            f"EER {r['eer']:.2f} %  minDCF(p_target={r['p_target']:g}) {r['min_dcf']:.4f}  "
            f"({r['num_trials']} trials, {r['num_target']} target)"
        )


def _cmd_extract(args) -> None:
    _require_inputs([args.mixture, args.enrollment])
    audio_io.check_output_path(args.out, args.overwrite)
    model = load(args.workdir, args.step)
    y = model.extract(args.mixture, args.enrollment)
    audio_io.write_wav(args.out, y, model.sample_rate, overwrite=args.overwrite)
    print(f"wrote {args.out} ({y.shape[0]} samples, {model.sample_rate} Hz, 16-bit)")


def cli_main(argv: Sequence[str] | None = None, prog: str = "csc-jax") -> int:
    """Run one subcommand (embed / score / extract); returns the exit status (0 ok, 2 error)."""
    from csc_jax.config import ConfigError
    from csc_jax.training.checkpointing import CheckpointError

    args = _parser(prog).parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.WARNING)  # orbax logs every restore at INFO
    except ImportError:  # pragma: no cover - absl is a dependency
        pass
    command = {"embed": _cmd_embed, "score": _cmd_score, "extract": _cmd_extract}[args.command]
    try:
        command(args)
    except (OSError, ValueError, ConfigError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 2
    return 0


def main() -> None:
    """Console-script entry point (``csc-jax``)."""
    sys.exit(cli_main())


if __name__ == "__main__":
    main()
