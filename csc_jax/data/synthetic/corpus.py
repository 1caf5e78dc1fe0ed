"""A generated corpus split: `Corpus`, speaker and utterance naming, and `generate_corpus`."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping

import numpy as np
import tqdm

from csc_jax.data.synthetic.params import (
    NUM_SESSIONS,
    validate_params,
    validate_sample_rate,
    validate_split,
)
from csc_jax.data.synthetic.utterance import synthesize_utterance


@dataclasses.dataclass(frozen=True)
class Corpus:
    """A generated corpus split.

    Attributes:
      waveforms: one float32 array of shape (num_samples,) per utterance, values in (-1, 1).
      keys: VoxCeleb-style relative paths, e.g. 'spk0203/sess00/utt000.wav'.
      speakers: speaker name per utterance, e.g. 'spk0203'.
      sample_rate: samples per second of every waveform.
    """

    waveforms: list[np.ndarray]
    keys: list[str]
    speakers: list[str]
    sample_rate: int


def _split_layout(p: dict, split: str) -> tuple[int, int, int]:
    """Returns (number of speakers, utterances per speaker, first speaker number)."""
    if split == "train":
        return p["num_train_speakers"], p["train_utterances_per_speaker"], 0
    if split == "test":
        return p["num_test_speakers"], p["test_utterances_per_speaker"], p["num_train_speakers"]
    first = p["num_train_speakers"] + p["num_test_speakers"]
    return p["num_val_speakers"], p["val_utterances_per_speaker"], first


def speaker_name(number: int) -> str:
    """Speaker name for a global speaker number (test speakers follow the train speakers,
    validation speakers the test speakers)."""
    return f"spk{number:04d}"


def utterance_key(speaker: str, utterance_index: int) -> str:
    """Trial-list key: '<speaker>/sess<utterance_index % 3>/utt<utterance_index>.wav'."""
    return f"{speaker}/sess{utterance_index % NUM_SESSIONS:02d}/utt{utterance_index:03d}.wav"


def generate_corpus(
    params: Mapping, split: str, sample_rate: int, *, progress: bool | None = None
) -> Corpus:
    """Synthesises one split of the procedural corpus (deterministic for the params).

    Args:
      params: c.data.synthetic: seed, num_train_speakers, num_test_speakers,
        train_utterances_per_speaker, test_utterances_per_speaker, min_seconds, max_seconds.
      split: 'train', 'test' or 'val' (validation speakers, disjoint from both).
      sample_rate: output rate in Hz (>= 8000).
      progress: show a tqdm bar; None shows it only when stderr is a terminal.

    Returns:
      Corpus ordered speaker-major; utterance lengths are uniform in [min_seconds, max_seconds].
    """
    p = validate_params(params)
    validate_split(split)
    sample_rate = validate_sample_rate(sample_rate)
    num_speakers, per_speaker, first = _split_layout(p, split)
    if progress is None:
        progress = sys.stderr.isatty()
    waveforms: list[np.ndarray] = []
    keys: list[str] = []
    speakers: list[str] = []
    with tqdm.tqdm(
        total=num_speakers * per_speaker,
        desc=f"synthetic {split} corpus",
        unit="utt",
        disable=not progress,
    ) as bar:
        for s in range(num_speakers):
            name = speaker_name(first + s)
            for u in range(per_speaker):
                waveforms.append(
                    synthesize_utterance(
                        p["seed"],
                        split,
                        s,
                        u,
                        sample_rate,
                        min_seconds=p["min_seconds"],
                        max_seconds=p["max_seconds"],
                    )
                )
                keys.append(utterance_key(name, u))
                speakers.append(name)
                bar.update(1)
    return Corpus(waveforms=waveforms, keys=keys, speakers=speakers, sample_rate=sample_rate)
