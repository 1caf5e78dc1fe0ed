"""grain training pipeline: shapes, crop provenance, determinism, sharding, checkpointing."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import grain
import numpy as np
import orbax.checkpoint as ocp
import pytest
import soundfile

from csc_jax.data import pipeline
from csc_jax.data.sources import FolderSource, SyntheticSource

T = 64  # crop length
K = 3
STRIDE = 1000  # sample value = utterance * STRIDE + position within the utterance


@dataclasses.dataclass(frozen=True)
class _Corpus:  # the fields of synthetic.Corpus
    waveforms: list[np.ndarray]
    keys: list[str]
    speakers: list[str]
    sample_rate: int


def _labelled_source(lengths: list[int]) -> SyntheticSource:
    """Utterance u is the ramp u*STRIDE + arange(L_u): any sample tells (utterance, offset)."""
    waves = [(u * STRIDE + np.arange(n)).astype(np.float32) for u, n in enumerate(lengths)]
    keys = [f"spk{u % 4}/s/{u:03d}.wav" for u in range(len(lengths))]
    return SyntheticSource(_Corpus(waves, keys, [k.split("/")[0] for k in keys], 8000))


# 12 utterances, two shorter than T (repeat-padded), the rest longer.
LENGTHS = [40, 100, 64, 200, 30, 150, 90, 300, 120, 80, 70, 500]
SOURCE = _labelled_source(LENGTHS)


def _iterator(seed: int = 0, batch_size: int = 4, **kwargs):
    return pipeline.make_train_iterator(
        SOURCE, batch_size=batch_size, num_conditions=K, segment_samples=T, seed=seed, **kwargs
    )


def _take(iterator, n: int) -> list[dict[str, np.ndarray]]:
    return list(itertools.islice(iterator, n))


def _utterance(crop: np.ndarray) -> int:
    """The single utterance a crop comes from (asserts it is one utterance)."""
    ids = np.unique(crop // STRIDE)
    assert ids.size == 1, f"crop mixes utterances {ids}"
    return int(ids[0])


def _assert_is_window(crop: np.ndarray) -> None:
    """A contiguous window of the (tiled) ramp of its utterance."""
    u = _utterance(crop)
    offset = (crop - u * STRIDE).astype(np.int64)
    np.testing.assert_array_equal(offset, (offset[0] + np.arange(T)) % LENGTHS[u])


def test_shapes_dtypes_and_crop_provenance() -> None:
    seen_short = 0
    for batch in _take(_iterator(), 6):
        assert set(batch) == {"target", "interferer"}
        for name in ("target", "interferer"):
            assert batch[name].shape == (4, K, T) and batch[name].dtype == np.float32
        for b in range(4):
            targets = {_utterance(batch["target"][b, k]) for k in range(K)}
            assert len(targets) == 1  # all K crops from ONE utterance
            (u,) = targets
            seen_short += LENGTHS[u] < T
            for k in range(K):
                _assert_is_window(batch["target"][b, k])
                _assert_is_window(batch["interferer"][b, k])
                assert _utterance(batch["interferer"][b, k]) != u
    assert seen_short > 0  # short utterances were drawn and passed the tiled-window check


def test_epochs_cover_every_utterance_once_in_a_new_order() -> None:
    batches = _take(_iterator(), 6)  # 12 utterances / 4 = 3 batches per epoch
    order = [_utterance(b["target"][i, 0]) for b in batches for i in range(4)]
    assert sorted(order[:12]) == list(range(12))
    assert sorted(order[12:]) == list(range(12))
    assert order[:12] != order[12:]


def test_interferers_vary_and_crops_are_random() -> None:
    batches = _take(_iterator(), 6)
    interferers = {
        _utterance(b["interferer"][i, k]) for b in batches for i in range(4) for k in range(K)
    }
    assert len(interferers) == 12
    starts = {float(b["target"][i, k, 0]) for b in batches for i in range(4) for k in range(K)}
    assert len(starts) > 40  # crop offsets differ across k and examples


def test_same_seed_same_stream_other_seed_differs() -> None:
    a, b, c = (_take(_iterator(seed=s), 5) for s in (7, 7, 8))
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x["target"], y["target"])
        np.testing.assert_array_equal(x["interferer"], y["interferer"])
    assert any(not np.array_equal(x["target"], z["target"]) for x, z in zip(a, c, strict=True))


def test_shards_interleave_into_the_single_process_stream() -> None:
    steps = 5
    single = _take(_iterator(batch_size=6), steps)
    shards = [_take(_iterator(batch_size=6, shard_index=s, shard_count=3), steps) for s in range(3)]
    for t in range(steps):
        for s in range(3):
            for name in ("target", "interferer"):
                assert shards[s][t][name].shape == (2, K, T)
                np.testing.assert_array_equal(shards[s][t][name], single[t][name][s::3])
    # Disjoint and covering: the first two steps (12 positions) are one epoch.
    per_shard = [
        {_utterance(shards[s][t]["target"][i, 0]) for t in range(2) for i in range(2)}
        for s in range(3)
    ]
    assert sum(len(p) for p in per_shard) == 12 and set().union(*per_shard) == set(range(12))


def test_invalid_arguments_name_the_values() -> None:
    with pytest.raises(ValueError, match="batch_size 6 is not divisible by shard_count 4"):
        _iterator(batch_size=6, shard_count=4)
    with pytest.raises(ValueError, match="shard_index"):
        _iterator(shard_index=2, shard_count=2)
    with pytest.raises(ValueError, match="segment_samples"):
        pipeline.make_train_iterator(
            SOURCE, batch_size=4, num_conditions=K, segment_samples=0, seed=0
        )


def test_state_restores_mid_epoch() -> None:
    it = _iterator(seed=3)
    _take(it, 5)  # 5 batches = 1 epoch + 2/3 of the next
    state = it.get_state()
    text = pipeline.iterator_state_to_json(state)
    expected = _take(it, 3)
    fresh = _iterator(seed=3)
    fresh.set_state(pipeline.iterator_state_from_json(text))
    for x, y in zip(expected, _take(fresh, 3), strict=True):
        np.testing.assert_array_equal(x["target"], y["target"])
        np.testing.assert_array_equal(x["interferer"], y["interferer"])
    assert pipeline.iterator_state_to_json(b'{"a": 1}') == '{"a": 1}'
    with pytest.raises(TypeError, match="JSON object"):
        pipeline.iterator_state_from_json("[1]")


def test_worker_processes_give_the_same_stream() -> None:
    expected = _take(_iterator(seed=5), 3)
    it = _iterator(seed=5, num_workers=1)
    try:
        got = _take(it, 3)
    finally:
        it.close()
    for x, y in zip(expected, got, strict=True):
        np.testing.assert_array_equal(x["target"], y["target"])
        np.testing.assert_array_equal(x["interferer"], y["interferer"])


def test_folder_source_crops_are_windows_of_the_files(tmp_path: Path) -> None:
    lengths = [50, 120, 200, 90]
    for u, n in enumerate(lengths):
        path = tmp_path / f"spk{u % 2}" / "sess" / f"{u}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(str(path), (u * STRIDE + np.arange(n)).astype(np.float32), 8000, "FLOAT")
    source = FolderSource(tmp_path, 8000)
    it = pipeline.make_train_iterator(
        source, batch_size=2, num_conditions=K, segment_samples=T, seed=0
    )
    for batch in _take(it, 4):
        for crop in (
            batch["target"].reshape(-1, T).tolist() + batch["interferer"].reshape(-1, T).tolist()
        ):
            crop = np.asarray(crop)
            u = _utterance(crop)
            offset = (crop - u * STRIDE).astype(np.int64)
            np.testing.assert_array_equal(offset, (offset[0] + np.arange(T)) % lengths[u])


def test_measure_throughput_counts_crops() -> None:
    it = _iterator()
    rate = pipeline.measure_throughput(it, 3)
    assert rate > 0
    assert it.get_state()["next_index"] == 4  # one warm-up batch + 3 timed
    with pytest.raises(ValueError, match="num_batches"):
        pipeline.measure_throughput(it, 0)


def test_orbax_checkpoint_manager_round_trip(tmp_path: Path) -> None:
    """The exact save/restore recipe of the pipeline module docstring."""
    train_state = {"w": np.arange(4, dtype=np.float32)}
    it = _iterator(seed=11)
    _take(it, 4)
    manager = ocp.CheckpointManager(
        tmp_path / "checkpoints", options=ocp.CheckpointManagerOptions(max_to_keep=2)
    )
    manager.save(
        4,
        args=ocp.args.Composite(
            state=ocp.args.StandardSave(train_state),
            data_iter=grain.checkpoint.CheckpointSave(it),
        ),
    )
    manager.wait_until_finished()
    expected = _take(it, 2)
    manager.close()

    manager = ocp.CheckpointManager(tmp_path / "checkpoints")
    fresh = _iterator(seed=11)
    restored = manager.restore(
        manager.latest_step(),
        args=ocp.args.Composite(
            state=ocp.args.StandardRestore(train_state),
            data_iter=grain.checkpoint.CheckpointRestore(fresh),
        ),
    )
    manager.close()
    np.testing.assert_array_equal(restored.state["w"], train_state["w"])
    assert restored.data_iter is fresh
    for x, y in zip(expected, _take(fresh, 2), strict=True):
        np.testing.assert_array_equal(x["target"], y["target"])
