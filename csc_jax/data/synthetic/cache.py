"""The on-disk cache of generated splits (one .npz per params/split/rate/version) and the
export of a corpus as a wav tree.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import warnings
import zipfile
from collections.abc import Mapping

import numpy as np
import soundfile

from csc_jax import io_utils
from csc_jax.data.synthetic.corpus import Corpus, generate_corpus
from csc_jax.data.synthetic.params import validate_params, validate_sample_rate, validate_split
from csc_jax.data.synthetic.utterance import PCM_SCALE

# Part of every cache file's identity: bump it whenever a change alters generated audio, so
# stale caches are never reused.
CORPUS_VERSION = 2


def cache_path(
    params: Mapping, split: str, sample_rate: int, cache_dir: str | os.PathLike
) -> pathlib.Path:
    """`<cache_dir>/synthetic/<split>-<hash>.npz`; the hash covers params, split, rate, version."""
    p = validate_params(params)
    validate_split(split)
    sample_rate = validate_sample_rate(sample_rate)
    return (
        pathlib.Path(cache_dir) / "synthetic" / f"{split}-{_cache_hash(p, split, sample_rate)}.npz"
    )


def _cache_description(p: dict, split: str, sample_rate: int) -> str:
    return json.dumps(
        {"params": p, "split": split, "sample_rate": sample_rate, "version": CORPUS_VERSION},
        sort_keys=True,
    )


def _cache_hash(p: dict, split: str, sample_rate: int) -> str:
    return hashlib.sha256(_cache_description(p, split, sample_rate).encode()).hexdigest()[:16]


def load_or_generate(
    params: Mapping,
    split: str,
    sample_rate: int,
    cache_dir: str | os.PathLike,
    *,
    progress: bool | None = None,
) -> Corpus:
    """Returns the corpus split from the cache, generating and caching it on a miss.

    The cache file is written atomically (`io_utils.atomic_output`: fsync + rename). An
    unreadable or inconsistent cache file is not trusted: a warning naming the file is issued
    and the split is regenerated and rewritten (the cache only holds derived data).
    """
    p = validate_params(params)
    validate_split(split)
    sample_rate = validate_sample_rate(sample_rate)
    path = cache_path(p, split, sample_rate, cache_dir)
    description = _cache_description(p, split, sample_rate)
    if path.exists():
        try:
            return _read_cache(path, description)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
            warnings.warn(
                f"synthetic corpus cache {str(path)!r} is unreadable ({err}); regenerating it",
                RuntimeWarning,
                stacklevel=2,
            )
    corpus = generate_corpus(p, split, sample_rate, progress=progress)
    _write_cache(corpus, path, description)
    return corpus


def _write_cache(corpus: Corpus, path: pathlib.Path, description: str) -> None:
    lengths = np.array([len(w) for w in corpus.waveforms], dtype=np.int64)
    audio = np.concatenate(corpus.waveforms) if corpus.waveforms else np.zeros(0, np.float32)
    pcm = np.round(audio * np.float32(PCM_SCALE)).astype(np.int16)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written to a file object: np.savez given a path would append '.npz' to the temporary name.
    with io_utils.atomic_output(path) as tmp, open(tmp, "wb") as f:
        np.savez(
            f,
            pcm=pcm,
            lengths=lengths,
            keys=np.array(corpus.keys, dtype=np.str_),
            speakers=np.array(corpus.speakers, dtype=np.str_),
            sample_rate=np.int64(corpus.sample_rate),
            description=np.array(description),
        )


def _read_cache(path: pathlib.Path, description: str) -> Corpus:
    with np.load(path, allow_pickle=False) as data:
        stored = str(data["description"][()])
        if stored != description:
            raise ValueError("its recorded params/version do not match the requested corpus")
        pcm = data["pcm"]
        lengths = data["lengths"]
        keys = [str(k) for k in data["keys"]]
        speakers = [str(s) for s in data["speakers"]]
        sample_rate = int(data["sample_rate"])
    if pcm.dtype != np.int16 or lengths.ndim != 1 or int(lengths.sum()) != pcm.shape[0]:
        raise ValueError("audio and utterance lengths are inconsistent")
    if not len(keys) == len(speakers) == len(lengths):
        raise ValueError("keys, speakers and lengths differ in count")
    audio = pcm.astype(np.float32) / np.float32(PCM_SCALE)
    waveforms = list(np.split(audio, np.cumsum(lengths)[:-1])) if len(lengths) else []
    return Corpus(waveforms=waveforms, keys=keys, speakers=speakers, sample_rate=sample_rate)


def save_wav_tree(corpus: Corpus, root: str | os.PathLike) -> pathlib.Path:
    """Writes the corpus as `<root>/<key>` 16-bit PCM wav files (VoxCeleb layout); returns root.

    Lossless: reading a file back with soundfile (float32) gives the waveform bit for bit.
    """
    root = pathlib.Path(root)
    for key, wave in zip(corpus.keys, corpus.waveforms, strict=True):
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        pcm = np.round(np.asarray(wave, np.float32) * np.float32(PCM_SCALE))
        if pcm.size and (pcm.max() > 32767 or pcm.min() < -32768):
            raise ValueError(f"waveform {key!r} exceeds the 16-bit range")
        soundfile.write(path, pcm.astype(np.int16), corpus.sample_rate, subtype="PCM_16")
    return root
