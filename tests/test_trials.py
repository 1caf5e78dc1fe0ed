"""Tests for VoxCeleb-format trial lists (csc_jax/data/trials.py)."""

import itertools
import os
import random

import hypothesis
import numpy as np
import pytest
from hypothesis import strategies as st

from csc_jax.data import synthetic, trials
from csc_jax.data.trials import Trial
from csc_jax.errors import DataError, UnknownKeyError


def layout(num_speakers: int, per_speaker: int, num_sessions: int = 3):
    """Keys 'spkS/sessN/uttU.wav' with utterance U in session U % num_sessions."""
    keys, speakers = [], []
    for s in range(num_speakers):
        for u in range(per_speaker):
            keys.append(f"spk{s:04d}/sess{u % num_sessions:02d}/utt{u:03d}.wav")
            speakers.append(f"spk{s:04d}")
    return keys, speakers


def session(key: str) -> str:
    return key.split("/")[1]


def speaker(key: str) -> str:
    return key.split("/")[0]


# ---------------------------------------------------------------------------- read / write
def test_read_trials_parses_voxceleb_lines(tmp_path):
    path = tmp_path / "trials.txt"
    path.write_text(
        "1 id10270/x6uYqmx31kE/00001.wav id10270/8jEAjG6SegY/00008.wav\n"
        "\n"
        "0 id10270/x6uYqmx31kE/00001.wav id10300/ize_eiCFEg0/00003.wav\r\n"
        "   \t \n"
        "1\tid10309/a/1.wav   id10309/b/2.wav"  # tabs, runs of spaces, no final newline
    )
    assert trials.read_trials(path) == [
        Trial(1, "id10270/x6uYqmx31kE/00001.wav", "id10270/8jEAjG6SegY/00008.wav"),
        Trial(0, "id10270/x6uYqmx31kE/00001.wav", "id10300/ize_eiCFEg0/00003.wav"),
        Trial(1, "id10309/a/1.wav", "id10309/b/2.wav"),
    ]
    assert trials.read_trials(str(path)) == trials.read_trials(path)


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ("1 a/b/1.wav", "got 2 fields"),
        ("1", "got 1 fields"),
        ("1 a/b/1.wav a/c/2.wav extra", "got 4 fields"),
        ("2 a/b/1.wav a/c/2.wav", "label must be 0 or 1, got '2'"),
        ("-1 a/b/1.wav a/c/2.wav", "label must be 0 or 1"),
        ("true a/b/1.wav a/c/2.wav", "label must be 0 or 1"),
        ("1.0 a/b/1.wav a/c/2.wav", "label must be 0 or 1"),
        ("a/b/1.wav a/c/2.wav 1", "label must be 0 or 1"),
    ],
)
def test_read_trials_rejects_malformed_lines(tmp_path, bad_line, message):
    path = tmp_path / "trials.txt"
    path.write_text(f"1 a/b/1.wav a/b/2.wav\n\n{bad_line}\n0 a/b/1.wav c/d/3.wav\n")
    with pytest.raises(DataError, match=message) as info:
        trials.read_trials(path)
    text = str(info.value)
    assert f"{path}:3:" in text  # file and 1-based line number (blank lines count)
    assert repr(bad_line) in text  # the offending line itself


def test_read_trials_rejects_empty_file(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_text("\n\n")
    with pytest.raises(DataError, match="no trials"):
        trials.read_trials(path)


def test_read_trials_missing_file_names_it(tmp_path):
    with pytest.raises(DataError, match="nope.txt' does not exist"):
        trials.read_trials(tmp_path / "nope.txt")
    with pytest.raises(DataError, match="is a directory"):
        trials.read_trials(tmp_path)
    (tmp_path / "latin1.txt").write_bytes(b"1 caf\xe9/a/1.wav caf\xe9/b/2.wav\n")
    with pytest.raises(DataError, match="latin1.txt' cannot be read"):
        trials.read_trials(tmp_path / "latin1.txt")


def test_write_then_read_round_trips_atomically(tmp_path):
    original = [Trial(1, "s1/a/1.wav", "s1/b/2.wav"), Trial(0, "s1/a/1.wav", "s2/a/1.wav")]
    path = tmp_path / "sub" / "trials.txt"
    path.parent.mkdir()
    path.write_text("stale content that must be replaced\n")
    trials.write_trials(original, path)
    assert path.read_text() == "1 s1/a/1.wav s1/b/2.wav\n0 s1/a/1.wav s2/a/1.wav\n"
    assert trials.read_trials(path) == original
    assert os.listdir(path.parent) == ["trials.txt"]  # no temporary file left behind


def test_write_trials_failure_keeps_old_file(tmp_path):
    path = tmp_path / "trials.txt"
    path.write_text("1 s1/a/1.wav s1/b/2.wav\n")
    with pytest.raises(TypeError, match="Trial"):
        trials.write_trials([Trial(1, "x/y/1.wav", "x/z/2.wav"), ("1", "a", "b")], path)
    assert path.read_text() == "1 s1/a/1.wav s1/b/2.wav\n"
    assert os.listdir(tmp_path) == ["trials.txt"]


@pytest.mark.parametrize(
    ("label", "enroll", "test"),
    [
        (2, "a", "b"),
        (-1, "a", "b"),
        (True, "a", "b"),
        (1, "a b", "c"),
        (1, "a", ""),
        (0, "a", None),
    ],
)
def test_trial_rejects_unwritable_values(label, enroll, test):
    with pytest.raises(ValueError, match="label|key"):
        Trial(label, enroll, test)


# ---------------------------------------------------------------------------- generate
def check_invariants(result, keys, speakers, sessions=None):
    speaker_of = dict(zip(keys, speakers, strict=True))
    pairs = [frozenset((t.enroll, t.test)) for t in result]
    assert len(set(pairs)) == len(pairs), "duplicate trial"
    for t in result:
        assert t.enroll != t.test
        assert t.enroll < t.test  # enrollment key is the smaller key of the pair
        assert t.label == int(speaker_of[t.enroll] == speaker_of[t.test])
    assert result == sorted(result, key=lambda t: (t.enroll, t.test))


def test_generate_trials_counts_and_cross_session_targets():
    keys, speakers = layout(4, 6)
    result = trials.generate_trials(keys, speakers, seed=0)
    check_invariants(result, keys, speakers)
    targets = [t for t in result if t.label == 1]
    nontargets = [t for t in result if t.label == 0]
    # Per speaker: C(6, 2) = 15 pairs, minus 3 sessions x C(2, 2) same-session pairs.
    assert len(targets) == 4 * 12
    assert len(nontargets) == len(targets)
    assert all(session(t.enroll) != session(t.test) for t in targets)
    all_cross = {
        (a, b)
        for a, b in itertools.combinations(sorted(keys), 2)
        if speaker(a) == speaker(b) and session(a) != session(b)
    }
    assert {(t.enroll, t.test) for t in targets} == all_cross


def test_generate_trials_is_deterministic_and_seeded():
    keys, speakers = layout(5, 4)
    first = trials.generate_trials(keys, speakers, seed=3)
    assert trials.generate_trials(list(keys), list(speakers), seed=3) == first
    other = trials.generate_trials(keys, speakers, seed=4)
    assert len(other) == len(first)
    assert {t for t in other if t.label == 0} != {t for t in first if t.label == 0}


def test_generate_trials_does_not_depend_on_input_order():
    keys, speakers = layout(5, 5)
    order = list(range(len(keys)))
    random.Random(0).shuffle(order)
    shuffled = trials.generate_trials(
        [keys[i] for i in order],
        [speakers[i] for i in order],
        seed=1,
        max_target_per_speaker=4,
        num_nontarget_per_target=2,
    )
    expected = trials.generate_trials(
        keys, speakers, seed=1, max_target_per_speaker=4, num_nontarget_per_target=2
    )
    assert shuffled == expected


def test_generate_trials_caps_targets_per_speaker():
    keys, speakers = layout(3, 9)
    result = trials.generate_trials(keys, speakers, seed=0, max_target_per_speaker=5)
    check_invariants(result, keys, speakers)
    targets = [t for t in result if t.label == 1]
    assert len(targets) == 3 * 5
    for name in set(speakers):
        mine = [t for t in targets if speaker(t.enroll) == name]
        assert len(mine) == 5
        assert all(session(t.enroll) != session(t.test) for t in mine)
    assert len(result) - len(targets) == len(targets)


def test_generate_trials_nontarget_ratio():
    keys, speakers = layout(6, 3)
    result = trials.generate_trials(keys, speakers, seed=0, num_nontarget_per_target=3)
    check_invariants(result, keys, speakers)
    n_target = sum(t.label for t in result)
    assert n_target == 6 * 3  # 3 utterances in 3 sessions: all 3 pairs are cross-session
    assert len(result) - n_target == 3 * n_target
    only_targets = trials.generate_trials(keys, speakers, seed=0, num_nontarget_per_target=0)
    assert all(t.label == 1 for t in only_targets) and len(only_targets) == n_target


def test_generate_trials_single_session_speaker_uses_same_session_pairs():
    keys, speakers = layout(2, 4)
    # Speaker spk0002 recorded everything in one session: its pairs are still used.
    keys += [f"spk0002/sess00/utt{u:03d}.wav" for u in range(3)]
    speakers += ["spk0002"] * 3
    result = trials.generate_trials(keys, speakers, seed=0)
    check_invariants(result, keys, speakers)
    targets = [t for t in result if t.label == 1]
    assert sum(speaker(t.enroll) == "spk0002" for t in targets) == 3
    # The others have cross-session pairs, so their same-session pairs are left out.
    assert all(
        session(t.enroll) != session(t.test) for t in targets if speaker(t.enroll) != "spk0002"
    )


def test_generate_trials_without_session_information_uses_all_pairs():
    keys = [f"spk{s}/utt{u}.wav" for s in range(3) for u in range(4)]  # two path components
    speakers = [k.split("/")[0] for k in keys]
    result = trials.generate_trials(keys, speakers, seed=0)
    check_invariants(result, keys, speakers)
    assert sum(t.label for t in result) == 3 * 6


def test_generate_trials_explicit_sessions_override_keys():
    keys = [f"s{s}/u{u}.wav" for s in range(2) for u in range(4)]
    speakers = [k.split("/")[0] for k in keys]
    sessions = ["A", "A", "B", "B"] * 2
    result = trials.generate_trials(keys, speakers, seed=0, sessions=sessions)
    session_of = dict(zip(keys, sessions, strict=True))
    targets = [t for t in result if t.label == 1]
    assert len(targets) == 2 * 4
    assert all(session_of[t.enroll] != session_of[t.test] for t in targets)


def test_generate_trials_dense_nontarget_request():
    # 3 speakers x 2 utterances: 12 distinct non-target pairs; ask for all of them.
    keys, speakers = layout(3, 2)
    result = trials.generate_trials(keys, speakers, seed=0, num_nontarget_per_target=4)
    check_invariants(result, keys, speakers)
    assert sum(1 - t.label for t in result) == 12
    with pytest.raises(DataError, match="only 12 distinct pairs"):
        trials.generate_trials(keys, speakers, seed=0, num_nontarget_per_target=5)


@pytest.mark.parametrize(
    ("keys", "speakers", "kwargs", "message"),
    [
        (["a/x/1.wav", "a/y/2.wav"], ["a", "a"], {}, "at least 2 speakers"),
        (["a/x/1.wav", "b/x/1.wav"], ["a", "b"], {}, "no speaker has 2 utterances"),
        (["a/x/1.wav", "b/x/1.wav"], ["a"], {}, "2 keys but 1 speakers"),
        (["a/x/1.wav", "a/x/1.wav", "b/x/1.wav"], ["a", "a", "b"], {}, "duplicate key"),
        (["a/x/1.wav", "a/y/2.wav", "b/x/1.wav"], ["a", "a", "b"], {"seed": -1}, "seed"),
        (
            ["a/x/1.wav", "a/y/2.wav", "b/x/1.wav"],
            ["a", "a", "b"],
            {"max_target_per_speaker": 0},
            "max_target_per_speaker",
        ),
        (
            ["a/x/1.wav", "a/y/2.wav", "b/x/1.wav"],
            ["a", "a", "b"],
            {"num_nontarget_per_target": -1},
            "num_nontarget_per_target",
        ),
        (
            ["a/x/1.wav", "a/y/2.wav", "b/x/1.wav"],
            ["a", "a", "b"],
            {"sessions": ["x"]},
            "sessions",
        ),
    ],
)
def test_generate_trials_errors(keys, speakers, kwargs, message):
    kwargs = {"seed": 0, **kwargs}
    # Too little data is the user's (DataError); bad arguments are the caller's (ValueError).
    data_problem = message in ("at least 2 speakers", "no speaker has 2 utterances")
    with pytest.raises(DataError if data_problem else ValueError, match=message) as info:
        trials.generate_trials(keys, speakers, **kwargs)
    assert isinstance(info.value, DataError) == data_problem


@hypothesis.settings(max_examples=40, deadline=None)
@hypothesis.given(
    sizes=st.lists(st.integers(1, 6), min_size=2, max_size=6),
    num_sessions=st.integers(1, 3),
    cap=st.none() | st.integers(1, 4),
    seed=st.integers(0, 2**32),
)
def test_generate_trials_properties(sizes, num_sessions, cap, seed):
    hypothesis.assume(max(sizes) >= 2)
    keys, speakers = [], []
    for s, size in enumerate(sizes):
        for u in range(size):
            keys.append(f"spk{s}/sess{u % num_sessions}/utt{u}.wav")
            speakers.append(f"spk{s}")
    # One non-target per target must fit into the distinct cross-speaker pairs.
    n = len(keys)
    available = n * (n - 1) // 2 - sum(k * (k - 1) // 2 for k in sizes)
    expected_targets = 0
    for size in sizes:
        per_session = [len(range(i, size, num_sessions)) for i in range(num_sessions)]
        pairs = size * (size - 1) // 2
        cross = pairs - sum(k * (k - 1) // 2 for k in per_session)
        candidates = cross or pairs
        expected_targets += candidates if cap is None else min(cap, candidates)
    hypothesis.assume(expected_targets <= available)
    result = trials.generate_trials(keys, speakers, seed=seed, max_target_per_speaker=cap)
    check_invariants(result, keys, speakers)
    n_target = sum(t.label for t in result)
    assert n_target == expected_targets
    assert len(result) == 2 * n_target


# ---------------------------------------------------------------------------- validate
def test_validate_trials_accepts_known_keys():
    keys, speakers = layout(3, 3)
    result = trials.generate_trials(keys, speakers, seed=0)
    assert trials.validate_trials(result, keys) is None
    assert trials.validate_trials(result, iter(keys), path="x.txt") is None


def test_validate_trials_lists_missing_keys():
    keys = [f"s/a/{i}.wav" for i in range(3)]
    listed = [Trial(1, keys[0], f"s/b/missing{i}.wav") for i in range(8)]
    listed.append(Trial(0, "t/a/gone.wav", keys[1]))
    with pytest.raises(UnknownKeyError, match="9 trial key") as info:
        trials.validate_trials(listed, keys, path="lists/trials.txt")
    text = str(info.value)
    assert "lists/trials.txt" in text
    assert "'s/b/missing0.wav'" in text and "'s/b/missing4.wav'" in text
    assert "missing5" not in text and "(and 4 more)" in text
    assert "\n" not in text and "(e.g. 's/a/0.wav')" in text  # one line, with a valid key
    with pytest.raises(UnknownKeyError, match="1 trial key"):
        trials.validate_trials(listed[-1:], keys)


# ---------------------------------------------------------------------------- synthetic
def test_default_synthetic_trials():
    keys, speakers = layout(4, 6)
    corpus = synthetic.Corpus(
        waveforms=[np.zeros(8, np.float32)] * len(keys),
        keys=keys,
        speakers=speakers,
        sample_rate=8000,
    )
    result = trials.default_synthetic_trials(corpus, seed=0)
    check_invariants(result, keys, speakers)
    targets = [t for t in result if t.label == 1]
    assert len(targets) == 4 * 12
    assert all(session(t.enroll) != session(t.test) for t in targets)
    assert len(result) == 2 * len(targets)
    assert trials.default_synthetic_trials(corpus, seed=0) == result


def test_default_synthetic_trials_caps_large_speakers():
    keys, speakers = layout(2, 30)  # 30 utterances: 290 cross-session pairs each
    corpus = synthetic.Corpus([np.zeros(8, np.float32)] * len(keys), keys, speakers, 8000)
    result = trials.default_synthetic_trials(corpus, seed=0)
    assert sum(t.label for t in result) == 2 * trials.DEFAULT_MAX_TARGET_PER_SPEAKER


def test_default_synthetic_trials_on_generated_test_split(tmp_path):
    params = {
        "seed": 5,
        "num_train_speakers": 2,
        "num_test_speakers": 3,
        "train_utterances_per_speaker": 1,
        "test_utterances_per_speaker": 4,
        "num_val_speakers": 2,
        "val_utterances_per_speaker": 2,
        "min_seconds": 0.25,
        "max_seconds": 0.25,
    }
    corpus = synthetic.generate_corpus(params, "test", 8000)
    result = trials.default_synthetic_trials(corpus, seed=0)
    trials.validate_trials(result, corpus.keys)
    check_invariants(result, corpus.keys, corpus.speakers)
    # 4 utterances in sessions 0, 1, 2, 0: 6 pairs minus the one same-session pair.
    assert sum(t.label for t in result) == 3 * 5
    path = tmp_path / "trials.txt"
    trials.write_trials(result, path)
    assert trials.read_trials(path) == result
