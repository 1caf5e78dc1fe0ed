"""The audio of a verification protocol: trials, enrollment and test utterances, and their
corrupted versions per condition.

Cost grows with utterances, not trials: every enrollment utterance is embedded once (clean,
as in the usual adverse-condition protocols) and every test utterance once per condition.
So each test utterance is corrupted **once per condition**, whatever trials it appears in:

* noise conditions: noise drawn from ``default_rng([seed, condition index, utterance id])``
  (colored Gaussian, or a recorded noise folder);
* interfering-speaker conditions: one interfering utterance per test utterance, the same for
  every SIR (``default_rng([seed, INTERFERER_STREAM, utterance id])``), whose speaker is
  neither the test utterance's speaker nor any speaker the utterance is scored against in the
  trial list; so no non-target trial has the enrolled voice inside its test mixture. A test
  set too small for that falls back to excluding only the test speaker, and the number of
  trials whose interferer is the enrolled speaker is reported (``interferer_conflicts``).

The utterance id is the utterance's index in the source, so any subset of trials or
conditions gives the same audio for an utterance.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from csc_jax.config import samples
from csc_jax.data.trials import Trial
from csc_jax.evaluation import conditions as cond_lib

INTERFERER_STREAM = 0x1F7E


@dataclasses.dataclass
class EvalSet:
    """Trials over one test source, with the per-utterance audio the protocol scores.

    Attributes:
      source: the test AudioSource.
      trials: the trial list.
      length: samples per utterance (``eval.seconds`` at the source rate; crop or wrap-pad).
      seed: ``eval.seed``.
      labels: (N,) int 0/1 per trial.
      enroll_keys / test_keys: sorted unique keys of each side.
      enroll_row / test_row: (N,) int, each trial's row in enroll_keys / test_keys.
      enroll_speaker: (N,) str, each trial's enrollment speaker (the bootstrap's cluster).
      interferer: {test key: source index of its interfering utterance}.
      interferer_conflicts: trials whose interferer's speaker is the enrolled speaker.
    """

    source: object
    trials: list[Trial]
    length: int
    seed: int
    noise: object = None

    def __post_init__(self):
        if not self.trials:
            raise ValueError("the evaluation needs at least one trial")
        self.labels = np.array([t.label for t in self.trials], np.int64)
        self.enroll_keys = sorted({t.enroll for t in self.trials})
        self.test_keys = sorted({t.test for t in self.trials})
        e_row = {k: i for i, k in enumerate(self.enroll_keys)}
        t_row = {k: i for i, k in enumerate(self.test_keys)}
        self.enroll_row = np.array([e_row[t.enroll] for t in self.trials], np.int64)
        self.test_row = np.array([t_row[t.test] for t in self.trials], np.int64)
        speakers = self.source.speakers
        self.enroll_speaker = np.array(
            [speakers[self.source.index_of(t.enroll)] for t in self.trials]
        )
        self._cache: dict[int, np.ndarray] = {}
        self._assign_interferers()

    # ------------------------------------------------------------------ audio
    def audio(self, key_or_index) -> np.ndarray:
        """(length,) float32 clean utterance (by key or source index), loaded once."""
        i = key_or_index if isinstance(key_or_index, int) else self.source.index_of(key_or_index)
        if i not in self._cache:
            wave = np.asarray(self.source[i], np.float32)
            self._cache[i] = cond_lib.fit_length(wave, self.length)
        return self._cache[i]

    def enrollment(self) -> np.ndarray:
        """(E, length) float32 clean enrollment utterances, in enroll_keys order."""
        return np.stack([self.audio(k) for k in self.enroll_keys])

    def tests(self, condition: cond_lib.Condition, index: int) -> np.ndarray:
        """(U, length) float32 test utterances under ``condition`` (the ``index``-th of the
        protocol's conditions), in test_keys order; deterministic per utterance."""
        out = np.empty((len(self.test_keys), self.length), np.float32)
        for row, key in enumerate(self.test_keys):
            uid = self.source.index_of(key)
            rng = np.random.default_rng([self.seed, index, uid])
            interferer = self.audio(self.interferer[key]) if condition.kind == "speech" else None
            noise = None
            if condition.kind == "noise" and self.noise is not None:
                noise = self.noise.sample(rng, self.length)
            out[row] = cond_lib.corrupt(
                self.audio(uid), condition, rng, interferer=interferer, noise=noise
            )
        return out

    # ------------------------------------------------------------------ interferers
    def _assign_interferers(self) -> None:
        speakers = np.asarray(self.source.speakers)
        scored_against: dict[str, set] = {k: set() for k in self.test_keys}
        for t, spk in zip(self.trials, self.enroll_speaker, strict=True):
            scored_against[t.test].add(spk)
        self.interferer: dict[str, int] = {}
        for key in self.test_keys:
            uid = self.source.index_of(key)
            own = speakers[uid]
            rng = np.random.default_rng([self.seed, INTERFERER_STREAM, uid])
            excluded = scored_against[key] | {own}
            candidates = np.flatnonzero(~np.isin(speakers, sorted(excluded)))
            if candidates.size == 0:  # tiny test set: only the test speaker is excluded
                candidates = np.flatnonzero(speakers != own)
            if candidates.size == 0:
                raise ValueError(
                    "no interfering speaker available: the test set needs at least 2 speakers"
                )
            self.interferer[key] = int(candidates[rng.integers(candidates.size)])
        interferer_speaker = {k: speakers[i] for k, i in self.interferer.items()}
        self.interferer_conflicts = int(
            sum(
                interferer_speaker[t.test] == spk
                for t, spk in zip(self.trials, self.enroll_speaker, strict=True)
            )
        )


def eval_length(config) -> int:
    """Samples per evaluation utterance (``eval.seconds`` at ``data.sample_rate``)."""
    return samples(config.eval.seconds, config.data.sample_rate)
