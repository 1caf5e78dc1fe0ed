"""VoxCeleb-format speaker-verification trial lists: read, write, generate, validate.

A trial list is a text file with one trial per line::

    1 id10270/x6uYqmx31kE/00001.wav id10270/8jEAjG6SegY/00008.wav

label (1 = same speaker / target, 0 = different speakers / non-target), enrollment key, test
key, separated by whitespace. Keys are paths relative to the audio root, as in
``AudioSource.keys``.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from collections.abc import Hashable, Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from csc_jax import io_utils
from csc_jax.errors import DataError, UnknownKeyError

if TYPE_CHECKING:
    from csc_jax.data.synthetic import Corpus

# Cap on target trials per speaker in `default_synthetic_trials` (bounds eval cost when a
# corpus has many utterances per speaker).
DEFAULT_MAX_TARGET_PER_SPEAKER = 50
_MISSING_SHOWN = 5


@dataclasses.dataclass(frozen=True)
class Trial:
    """One verification trial: label 1 (same speaker) or 0, enrollment key, test key."""

    label: int
    enroll: str
    test: str

    def __post_init__(self) -> None:
        if isinstance(self.label, bool) or self.label not in (0, 1):
            raise ValueError(f"trial label must be 0 or 1, got {self.label!r}")
        for name in ("enroll", "test"):
            key = getattr(self, name)
            if not isinstance(key, str) or not key or len(key.split()) != 1:
                # A key with whitespace could not be written back as a parsable line.
                raise ValueError(
                    f"trial {name} key must be a non-empty string without spaces, got {key!r}"
                )


def read_trials(path: str | os.PathLike) -> list[Trial]:
    """Parses a VoxCeleb-format trial list; blank lines are ignored.

    Raises:
      DataError: a missing or unreadable file, a line without exactly three fields or with a
        label other than 0/1 (the message gives the file, 1-based line number and the line),
        or a file with no trials.
    """
    path = pathlib.Path(path)
    trials: list[Trial] = []
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise DataError(
            f"trial list {str(path)!r} {what}; give a VoxCeleb-format file "
            "('label enroll_key test_key' per line), e.g. --config.data.folder.trials=PATH"
        )
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"trial list {str(path)!r} cannot be read ({e})") from e
    for number, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"{path}:{number}: {line.rstrip(chr(10)).rstrip(chr(13))!r}"
        if len(fields) != 3:
            raise DataError(
                f"malformed trial line (expected 'label enroll test', got {len(fields)} "
                f"fields) at {where}"
            )
        if fields[0] not in ("0", "1"):
            raise DataError(f"trial label must be 0 or 1, got {fields[0]!r} at {where}")
        trials.append(Trial(int(fields[0]), fields[1], fields[2]))
    if not trials:
        raise DataError(f"trial list {str(path)!r} contains no trials")
    return trials


def write_trials(trials: Iterable[Trial], path: str | os.PathLike) -> None:
    """Writes `trials` in VoxCeleb format, atomically and durably (`io_utils.atomic_write`)."""
    path = pathlib.Path(path)
    lines = []
    for trial in trials:
        if not isinstance(trial, Trial):
            raise TypeError(f"write_trials expects Trial objects, got {trial!r}")
        lines.append(f"{trial.label} {trial.enroll} {trial.test}\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    io_utils.atomic_write(path, "".join(lines))


def _session_of(key: str) -> str | None:
    parts = key.split("/")
    return parts[1] if len(parts) == 3 else None


def _check_int(name: str, value, minimum: int, alternative: str = "") -> None:
    """Raise ValueError unless ``value`` is an int (not bool) >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        kind = "a non-negative integer" if minimum == 0 else "a positive integer"
        raise ValueError(f"{name} must be {alternative}{kind}, got {value!r}")


def generate_trials(
    keys: Sequence[str],
    speakers: Sequence[Hashable],
    *,
    seed: int,
    num_nontarget_per_target: int = 1,
    sessions: Sequence[Hashable] | None = None,
    max_target_per_speaker: int | None = None,
) -> list[Trial]:
    """Generates a verification trial list over the utterances `keys` spoken by `speakers`.

    Counts rule:
      * Targets: for every speaker with at least two utterances, the candidate pairs are all
        unordered pairs of its utterances recorded in *different sessions*; a speaker whose
        utterances all share one session (or when there is no session information) uses all
        its pairs instead. If `max_target_per_speaker` is set, a seeded random subset of at most
        that many candidates is kept. num_target = sum over speakers of min(cap, candidates).
      * Non-targets: exactly num_nontarget_per_target * num_target distinct pairs of
        utterances of different speakers, drawn uniformly (seeded).
      * No pair appears twice; the enrollment key is the lexicographically smaller key of the
        pair. Trials are returned sorted by (enroll, test).

    Sessions: `sessions[i]` labels the recording session of `keys[i]`; when None and every key
    has three path components ('speaker/session/utt.wav', VoxCeleb and LibriSpeech layouts),
    the middle component is the session; otherwise there is no session information.

    The result depends only on the set of (key, speaker, session) triples and the seed, not on
    their order.

    Raises:
      DataError: fewer than two speakers, no speaker with two utterances, or more non-targets
        requested than distinct pairs exist (the data is too small for the list asked for).
      ValueError: mismatched lengths, duplicate keys or bad counts (caller errors).
    """
    keys = list(keys)
    speakers = list(speakers)
    if len(keys) != len(speakers):
        raise ValueError(f"got {len(keys)} keys but {len(speakers)} speakers")
    if sessions is None:
        derived = [_session_of(k) for k in keys]
        sessions = derived if all(s is not None for s in derived) else [None] * len(keys)
    else:
        sessions = list(sessions)
        if len(sessions) != len(keys):
            raise ValueError(f"got {len(keys)} keys but {len(sessions)} sessions")
    _check_int("seed", seed, 0)
    _check_int("num_nontarget_per_target", num_nontarget_per_target, 0)
    if max_target_per_speaker is not None:
        _check_int("max_target_per_speaker", max_target_per_speaker, 1, "None or ")
    seen: set[str] = set()
    for key in keys:
        if key in seen:
            raise ValueError(f"duplicate key {key!r} in trial generation input")
        seen.add(key)

    # Canonical order so the result does not depend on the input order.
    order = sorted(range(len(keys)), key=lambda i: keys[i])
    keys = [keys[i] for i in order]
    speakers = [speakers[i] for i in order]
    sessions = [sessions[i] for i in order]
    by_speaker: dict[Hashable, list[int]] = {}
    for i, speaker in enumerate(speakers):
        by_speaker.setdefault(speaker, []).append(i)
    if len(by_speaker) < 2:
        raise DataError(
            f"need at least 2 speakers to generate trials, got {len(by_speaker)}; add speakers "
            "or give a trial list"
        )
    if not any(len(members) >= 2 for members in by_speaker.values()):
        raise DataError(
            "no speaker has 2 utterances, so there are no target trials; add recordings or give "
            "a trial list"
        )

    target_rng = np.random.default_rng([seed, 1])
    pairs: list[tuple[int, int, int]] = []  # (label, i, j) with i < j in canonical order
    # Speakers in order of their first key, so the rng stream is consumed deterministically.
    for members in by_speaker.values():
        all_pairs = [(i, j) for n, i in enumerate(members) for j in members[n + 1 :]]
        if any(sessions[i] is None for i in members):
            candidates = all_pairs
        else:
            cross = [(i, j) for i, j in all_pairs if sessions[i] != sessions[j]]
            candidates = cross or all_pairs
        if max_target_per_speaker is not None and len(candidates) > max_target_per_speaker:
            chosen = target_rng.choice(len(candidates), max_target_per_speaker, replace=False)
            candidates = [candidates[c] for c in sorted(chosen)]
        pairs.extend((1, i, j) for i, j in candidates)

    num_nontarget = int(num_nontarget_per_target) * len(pairs)
    speaker_number = {speaker: n for n, speaker in enumerate(by_speaker)}
    speaker_ids = np.array([speaker_number[s] for s in speakers], dtype=np.int64)
    pairs.extend((0, i, j) for i, j in _nontarget_pairs(speaker_ids, num_nontarget, seed))
    trials = [Trial(label, keys[i], keys[j]) for label, i, j in pairs]
    trials.sort(key=lambda t: (t.enroll, t.test))
    return trials


def _nontarget_pairs(speaker_ids: np.ndarray, count: int, seed: int) -> list[tuple[int, int]]:
    """`count` distinct (i, j), i < j, with different speakers, uniform over such pairs."""
    n = len(speaker_ids)
    sizes = np.bincount(speaker_ids)
    available = n * (n - 1) // 2 - int(np.sum(sizes * (sizes - 1) // 2))
    if count > available:
        raise DataError(
            f"requested {count} non-target trials but only {available} distinct pairs of "
            f"utterances from different speakers exist; lower num_nontarget_per_target"
        )
    if count == 0:
        return []
    rng = np.random.default_rng([seed, 2])
    if 2 * count > available:
        # Dense request: enumerate (bounded: available < 2 * count) and sample without
        # replacement, instead of rejection sampling that would stall.
        first, second = np.triu_indices(n, 1)
        keep = speaker_ids[first] != speaker_ids[second]
        first, second = first[keep], second[keep]
        chosen = np.sort(rng.choice(len(first), count, replace=False))
        return list(zip(first[chosen].tolist(), second[chosen].tolist(), strict=True))
    # Sparse request: rejection sampling; each accepted draw is uniform over unordered pairs.
    chosen_set: set[tuple[int, int]] = set()
    result: list[tuple[int, int]] = []
    while len(result) < count:
        batch = 2 * (count - len(result)) + 16
        a = rng.integers(n, size=batch)
        b = rng.integers(n, size=batch)
        for i, j in zip(a.tolist(), b.tolist(), strict=True):
            if speaker_ids[i] == speaker_ids[j]:
                continue
            pair = (i, j) if i < j else (j, i)
            if pair in chosen_set:
                continue
            chosen_set.add(pair)
            result.append(pair)
            if len(result) == count:
                break
    return result


def validate_trials(
    trials: Iterable[Trial], available_keys: Iterable[str], path: str | os.PathLike | None = None
) -> None:
    """Raises UnknownKeyError (a DataError) if any enrollment/test key is not in `available_keys`.

    The one-line message gives the number of missing keys, the first few of them, the
    trial-list path when given, and what a valid key looks like.
    """
    available = set(available_keys)
    missing: dict[str, None] = {}  # insertion-ordered set
    for trial in trials:
        for key in (trial.enroll, trial.test):
            if key not in available:
                missing[key] = None
    if missing:
        names = list(missing)
        shown = ", ".join(repr(k) for k in names[:_MISSING_SHOWN])
        more = f" (and {len(names) - _MISSING_SHOWN} more)" if len(names) > _MISSING_SHOWN else ""
        where = f" in trial list {str(path)!r}" if path is not None else ""
        example = f" (e.g. {min(available)!r})" if available else ""
        raise UnknownKeyError(
            f"{len(names)} trial key(s){where} not found in the audio source: {shown}{more}; "
            f"keys are paths relative to the audio folder{example} of files that exist and "
            "were not skipped"
        )


def default_synthetic_trials(corpus: Corpus, seed: int) -> list[Trial]:
    """Trial list for the synthetic test split.

    All cross-session target pairs of each speaker (at most DEFAULT_MAX_TARGET_PER_SPEAKER per
    speaker) plus an equal number of non-target pairs; see `generate_trials`.
    """
    return generate_trials(
        corpus.keys,
        corpus.speakers,
        seed=seed,
        num_nontarget_per_target=1,
        max_target_per_speaker=DEFAULT_MAX_TARGET_PER_SPEAKER,
    )


__all__ = [
    "DEFAULT_MAX_TARGET_PER_SPEAKER",
    "Trial",
    "default_synthetic_trials",
    "generate_trials",
    "read_trials",
    "validate_trials",
    "write_trials",
]
