"""The experiment config schema: every key with its default, and validation.

``base_config()`` holds every key's default; configs/*.py start from it and change keys
(configs/default.py and the demo select the 'stft' front end). Anything that
reads or compares configs (flattening, dotted overrides, saved configs, resume compatibility)
is in :mod:`csc_jax.config.tools`. The module is long because it is the one place where every
key is listed with the comment that documents it, next to the checks of its value.
"""

from __future__ import annotations

import ml_collections

from csc_jax.errors import ConfigError


def base_config() -> ml_collections.ConfigDict:
    """Every config key with its default; configs/*.py start from this (configs/default.py
    selects the 'stft' front end)."""
    c = ml_collections.ConfigDict()
    c.seed = 0
    # 'csc' (the method) or 'simclr' (baseline with in-batch negatives).
    c.method = "csc"
    # 'sharding' (jax.jit over a ('data',) Mesh) or 'pmap' (classic per-device step).
    c.parallel = "sharding"
    # Compute dtype; parameters and optimizer state stay float32.
    c.dtype = "float32"

    # ---------------------------------------------------------------- data
    c.data = ml_collections.ConfigDict()
    c.data.source = "synthetic"  # 'synthetic' | 'folder' | 'tfds' | 'mixed' (data.mixed)
    c.data.sample_rate = 16000
    c.data.segment_seconds = 1.0
    c.data.batch_size = 8  # global number of target utterances per step
    c.data.num_workers = 0  # grain worker processes (0 = in-process)
    c.data.cache_dir = "cache"  # where generated corpora and indexes are cached
    # Embedded procedural corpus (csc_jax/data/synthetic/).
    c.data.synthetic = ml_collections.ConfigDict()
    c.data.synthetic.seed = 1234
    c.data.synthetic.num_train_speakers = 200
    c.data.synthetic.num_test_speakers = 120
    c.data.synthetic.train_utterances_per_speaker = 8
    c.data.synthetic.test_utterances_per_speaker = 10
    # Validation speakers (the validation EER during training), disjoint from train and test.
    c.data.synthetic.num_val_speakers = 30
    c.data.synthetic.val_utterances_per_speaker = 6
    c.data.synthetic.min_seconds = 2.0
    c.data.synthetic.max_seconds = 4.0
    # Folder corpus (VoxCeleb or LibriSpeech layout) and tfds dataset.
    c.data.folder = ml_collections.ConfigDict()
    c.data.folder.train_root = ""
    c.data.folder.test_root = ""
    c.data.folder.trials = ""  # VoxCeleb-format trial list for test_root
    # Validation speakers for the validation EER during training ("" = none: validation off,
    # or on test_root's trials with eval.validation_on_test=True).
    c.data.folder.val_root = ""
    # Recorded noise for the eval noise conditions, any data.source; "" = colored Gaussian.
    c.data.folder.noise_root = ""
    c.data.folder.on_bad_file = "error"  # 'error' | 'skip' (skip with one warning and a count)
    c.data.tfds = ml_collections.ConfigDict()
    c.data.tfds.name = ""
    c.data.tfds.train_split = "train"
    c.data.tfds.test_split = "test"
    c.data.tfds.val_split = ""  # "" = none (as data.folder.val_root; eval.validation_on_test)
    c.data.tfds.dataset_sample_rate = 0  # 0 = read the rate from the dataset's features
    c.data.tfds.data_dir = ""
    c.data.tfds.audio_key = "speech"
    c.data.tfds.speaker_key = "speaker_id"
    # data.source='mixed': training draws from several corpora, each one the train split of
    # that source kind with its own keys above, with weights (the share of training
    # positions: "folder:0.7,synthetic:0.3"; weights > 0, normalised). Validation and test
    # come from the one source `primary` ('synthetic' | 'folder' | 'tfds'). All corpora are
    # read at data.sample_rate.
    c.data.mixed = ml_collections.ConfigDict()
    c.data.mixed.train = ""
    c.data.mixed.primary = "folder"
    # Training augmentation for transfer (docs/method.md "Training data for transfer";
    # csc_jax/data/augmentation.py). Host-side, drawn per (seed, position); all off by default.
    c.data.augment = ml_collections.ConfigDict()
    # Pseudo-speakers: each utterance is resampled by one factor a (every frequency times a,
    # duration / a) before its K views are cropped; each interferer gets its own factor.
    # speed_factors: a set drawn uniformly, e.g. (0.9, 1.0, 1.1); speed_range: (low, high)
    # uniform. () = off; at most one of the two; factors in (0, 4].
    c.data.augment.speed_factors = ()
    c.data.augment.speed_range = ()
    # Channel, drawn per target view and per interferer (the K views share the speaker, not
    # the channel); each stage with its probability in [0, 1]:
    # random EQ: eq_bands peaking biquads plus a low and a high shelf, gains U(+-eq_gain_db).
    c.data.augment.eq_prob = 0.0
    c.data.augment.eq_bands = 3
    c.data.augment.eq_gain_db = 6.0
    # band limits: Butterworth band-pass, high-pass cut-off U(highpass_hz), low-pass U(lowpass_hz)
    # (Hz; the low-pass is clipped below Nyquist).
    c.data.augment.band_limit_prob = 0.0
    c.data.augment.highpass_hz = (50.0, 400.0)
    c.data.augment.lowpass_hz = (3000.0, 7500.0)
    # telephone band 300-3400 Hz, then (telephone_mulaw) 8-bit mu-law companding (codec-like).
    c.data.augment.telephone_prob = 0.0
    c.data.augment.telephone_mulaw = True
    # reverberation: a synthetic RIR (unit direct path + Gaussian noise decaying 60 dB over
    # RT60 ~ U(reverb_rt60) s, tail energy U(reverb_drr_db) dB below the direct path).
    c.data.augment.reverb_prob = 0.0
    c.data.augment.reverb_rt60 = (0.2, 0.8)
    c.data.augment.reverb_drr_db = (0.0, 10.0)
    # Babble: with babble_prob an interferer is the sum (at equal RMS) of n ~ U{babble_speakers}
    # (inclusive, >= 1) distinct other utterances, each with its own speed factor.
    c.data.augment.babble_prob = 0.0
    c.data.augment.babble_speakers = (2, 4)

    # ---------------------------------------------------------------- mixing (on device)
    c.mixing = ml_collections.ConfigDict()
    c.mixing.num_conditions = 3  # K interfering conditions per target
    c.mixing.sir_db = (-5.0, 5.0)  # target-to-interferer ratio, uniform
    c.mixing.snr_db = (0.0, 20.0)  # target-to-noise ratio, uniform
    c.mixing.noise_prob = 0.5  # probability that a condition also gets noise

    # ---------------------------------------------------------------- model
    c.model = ml_collections.ConfigDict()
    # The separative encoder's front end (docs/method.md "Front ends"): 'waveform' (learned
    # filterbank, enc_filters / enc_kernel; the paper-shaped variant) or 'stft' (log-power STFT
    # features, a magnitude mask with the mixture's phase, inverse STFT; stft_window /
    # stft_hop in samples at data.sample_rate, the window a multiple >= 2 of the hop).
    # configs/default.py selects 'stft', which won at equal training wall time
    # (docs/frontends.md); here it stays 'waveform', which the configs built on the schema
    # alone (configs/gpu.py, voxceleb.py, tts.py, benchmark.py) were measured with.
    c.model.frontend = "waveform"
    c.model.stft_window = 320  # 20 ms at 16 kHz
    c.model.stft_hop = 160  # 10 ms at 16 kHz: 100 frames/s
    c.model.enc_filters = 128  # N ('waveform' only)
    c.model.enc_kernel = 64  # L (stride L/2; 'waveform' only): 4 ms at 16 kHz, 500 frames/s
    c.model.bottleneck = 64  # B
    c.model.hidden = 128  # H
    c.model.conv_kernel = 3  # P
    c.model.blocks = 4  # X
    c.model.repeats = 2  # R
    c.model.extraction_blocks = 2  # TCN blocks after FiLM conditioning on the global vector
    c.model.speaker_dim = 64  # D
    c.model.attention_heads = 4
    c.model.attention_dim = 64
    c.model.use_cross_attention = True  # ablation: False = mean-pooled global vector
    # True: encoder/decoder start as a perfect-reconstruction pair and the mask at 0.5, so
    # extraction starts from the mixture (needs enc_filters >= 2 * enc_kernel).
    c.model.identity_init = False
    # Rematerialisation of the TCN blocks in the backward pass (csc_jax/models/separator.py):
    # 'none', 'block' (keep each block's input, recompute its activations) or 'repeat' (keep
    # each repeat's input). It trades about one more TCN forward pass for most of the step's
    # activation memory (docs/gpu_memory.md); parameters and results are the same.
    c.model.remat = "none"
    # What a checkpointed segment keeps besides its input: 'nothing' or 'dots' (the 1x1-conv
    # outputs).
    c.model.remat_policy = "nothing"

    # ---------------------------------------------------------------- loss
    c.loss = ml_collections.ConfigDict()
    c.loss.lambda_sep = 1.0
    c.loss.lambda_csc = 1.0
    c.loss.temperature = 0.1
    # How each mixture is split into target / interference streams for L_csc:
    # 'components' (K=1 global vectors of the mixed target and interfering-speech components),
    # 'oracle' (mixture frames weighted by component energy shares) or 'mask' (mixture frames
    # weighted by the estimated mask). docs/method.md records why 'components' is the default.
    c.loss.stream_weights = "components"
    # 'components' only: False lets the contrastive loss's gradient flow through the component
    # passes too; True treats their vectors as fixed targets (stop_gradient on the parameters
    # of those passes), which measured 2.2x faster per CPU step (docs/performance.md).
    c.loss.stop_gradient_components = False
    # 'components' only: embed the components of the first this many of the K conditions
    # (0 = all): every condition's global vector is still contrasted with each of them.
    c.loss.component_conditions = 0
    # Which vector the extraction head is conditioned on in training (docs/method.md
    # "Extraction head"): 'enrollment' (the K=1 vector of the clean target component of the
    # next condition, e+[b,(k+1) mod K]: another crop of the target, clean, as an enrollment
    # is at evaluation; 'components' streams only; with K = 1, or loss.component_conditions
    # = 1, the crop's own for the conditions that have no next one) or
    # 'global' (the condition's own cross-attention vector c[b,k]; before deviation 10).
    c.loss.extraction_condition = "enrollment"

    # ---------------------------------------------------------------- optimisation
    c.optim = ml_collections.ConfigDict()
    c.optim.learning_rate = 1e-3
    c.optim.warmup_steps = 50
    c.optim.weight_decay = 1e-4
    c.optim.clip_norm = 5.0

    # ---------------------------------------------------------------- training
    c.train = ml_collections.ConfigDict()
    c.train.steps = 290
    c.train.log_every = 20
    c.train.checkpoint_every = 100
    c.train.keep_checkpoints = 2
    c.train.skip_nonfinite_updates = False
    c.train.progress_bar = True
    c.train.eval_at_end = True  # run the verification protocol after training

    # ---------------------------------------------------------------- evaluation
    c.eval = ml_collections.ConfigDict()
    c.eval.seed = 0
    c.eval.noise_snr_db = (10.0, 5.0, 0.0)
    c.eval.interferer_sir_db = (5.0, 0.0)
    c.eval.p_target = 0.01
    c.eval.batch_size = 32
    c.eval.seconds = 2.0  # eval utterances are cropped (or wrap-padded) to this length
    # Generated trial lists (no data.folder.trials): cross-session target pairs, at most this
    # many per speaker (0 = all), and this many non-target trials per target trial.
    c.eval.max_target_per_speaker = 50
    c.eval.nontarget_per_target = 2
    c.eval.max_trials = 0  # trial-list subset (half target, half non-target); 0 = all
    c.eval.extraction_scoring = True  # also score through target extraction (CSC models)
    c.eval.extraction_max_trials = 1000  # extraction is per trial: a fixed subset; 0 = all
    # Also score 'csc+query' (CSC models with cross-attention): the test side attended with the
    # enrollment's query (docs/method.md "Verification embedding"); on every trial. Off by
    # default: on the 11,880-trial protocol its per-trial scores double a results record's
    # scores.npz (146 -> 282 KB), over the store's 300 KB budget (csc_jax/experiments/store.py);
    # it adds ~15 % to the demo's evaluation time.
    c.eval.query_scoring = False
    # 95 % intervals: percentile bootstrap over enrollment speakers ('speaker') or trials.
    c.eval.bootstrap_unit = "speaker"
    c.eval.bootstrap_replicates = 1000
    # The MFCC reference is also computed at these rates (same utterances, e.g. 16 kHz audio).
    c.eval.reference_rates = ()
    # Validation EER (clean, SIR 0 dB) every this many steps during training; 0 = off.
    c.eval.validation_every = 30
    c.eval.validation_trials = 1000
    # A folder or tfds corpus without validation speakers (data.folder.val_root,
    # data.tfds.val_split): False (default) turns the validation EER off, with one printed
    # notice, since the only trials left are the test trials; True validates on a subset of
    # the test trials instead, with one printed warning (a convergence monitor only: a curve
    # on test speakers must not pick a step or a config). The embedded corpus always has its
    # own validation speakers (data.synthetic.num_val_speakers), and a validation split, where
    # there is one, is always used.
    c.eval.validation_on_test = False
    return c


# Keys added to the schema after runs had been saved, with the value those runs used where it
# differs from today's default: a saved config.json that lacks the key gets this value, not
# the default (a run saved before the time-frequency front end is a waveform model).
LEGACY_VALUES = {"model.frontend": "waveform", "loss.extraction_condition": "global"}

# Keys whose change makes a saved checkpoint unusable (parameter shapes or their meaning).
MODEL_KEYS = ("method", "model", "data.sample_rate")
# Under MODEL_KEYS but free to change on resume: how the same function is computed (memory
# for time), not which function or which parameters.
FREE_KEYS = ("model.remat", "model.remat_policy")
# Keys that change the result of a resumed run; they may differ only with an explicit override.
RUN_KEYS = (
    "seed",
    "data.augment",
    "data.mixed",
    "mixing",
    "loss",
    "optim",
    "data.batch_size",
    "data.segment_seconds",
)


def flatten(config, prefix: str = "") -> dict:
    """A (nested) ConfigDict or dict as one flat dict of dotted keys: {'data.batch_size': 8}."""
    d = config.to_dict() if hasattr(config, "to_dict") else config
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, ml_collections.ConfigDict | dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def samples(seconds: float, sample_rate: int) -> int:
    """Length in samples of ``seconds`` of audio at ``sample_rate`` (rounded to nearest)."""
    return int(round(float(seconds) * int(sample_rate)))


def segment_samples(config) -> int:
    """Training crop length T in samples (``data.segment_seconds`` at ``data.sample_rate``)."""
    return samples(config.data.segment_seconds, config.data.sample_rate)


def frontend_window(config) -> int:
    """Samples in one front-end frame of the config's model (the shortest input the model can
    analyse): ``model.stft_window`` or the waveform encoder's ``model.enc_kernel``."""
    m = config.model
    return int(m.stft_window if m.frontend == "stft" else m.enc_kernel)


SOURCE_KINDS = ("synthetic", "folder", "tfds")


def parse_source_weights(spec: str) -> list[tuple[str, float]]:
    """``data.mixed.train`` ("folder:0.7,synthetic:0.3") -> [(kind, weight)], weights > 0
    normalised to sum 1, kinds distinct and in SOURCE_KINDS.

    Raises:
      ConfigError: one line naming the key and the bad part.
    """
    out: list[tuple[str, float]] = []
    for part in (p.strip() for p in str(spec).split(",") if p.strip()):
        kind, sep, weight = part.partition(":")
        kind = kind.strip()
        try:
            w = float(weight) if sep else float("nan")
        except ValueError:
            w = float("nan")
        if kind not in SOURCE_KINDS or not w > 0 or w == float("inf"):
            raise ConfigError(
                f"data.mixed.train={spec!r}: {part!r} must be KIND:WEIGHT with KIND in "
                f"{', '.join(SOURCE_KINDS)} and WEIGHT > 0"
            )
        if any(kind == k for k, _ in out):
            raise ConfigError(f"data.mixed.train={spec!r}: {kind!r} is listed twice")
        out.append((kind, w))
    if not out:
        raise ConfigError(f"data.mixed.train={spec!r}: data.source='mixed' needs KIND:WEIGHT,...")
    total = sum(w for _, w in out)
    return [(k, w / total) for k, w in out]


def _validate_augment(flat: dict, need) -> None:
    """The data.augment and data.mixed keys (see base_config)."""
    a = "data.augment."
    factors = tuple(flat[a + "speed_factors"])
    need(all(0 < f <= 4 for f in factors), a + "speed_factors", "factors must be in (0, 4]")
    rng = tuple(flat[a + "speed_range"])
    need(
        rng == () or (len(rng) == 2 and 0 < rng[0] <= rng[1] <= 4),
        a + "speed_range",
        "must be () or (low, high) with 0 < low <= high <= 4",
    )
    need(not (factors and rng), a + "speed_range", "set speed_factors or speed_range, not both")
    for key in ("eq_prob", "band_limit_prob", "telephone_prob", "reverb_prob", "babble_prob"):
        need(0.0 <= flat[a + key] <= 1.0, a + key, "must be in [0, 1]")
    need(flat[a + "eq_bands"] >= 0, a + "eq_bands", "must be >= 0")
    need(flat[a + "eq_gain_db"] >= 0, a + "eq_gain_db", "must be >= 0")
    nyquist = 0.49 * flat["data.sample_rate"]  # band_limit_sos clips there
    for key, low in (("highpass_hz", 0.0), ("lowpass_hz", 0.0), ("reverb_rt60", 0.0)):
        lo_hi = tuple(flat[a + key])
        need(
            len(lo_hi) == 2 and low < lo_hi[0] <= lo_hi[1],
            a + key,
            "must be (low, high) with 0 < low <= high",
        )
    need(
        flat[a + "highpass_hz"][1] < flat[a + "lowpass_hz"][0]
        and flat[a + "highpass_hz"][1] < nyquist,
        a + "highpass_hz",
        f"must lie below data.augment.lowpass_hz={tuple(flat[a + 'lowpass_hz'])} and Nyquist",
    )
    drr = tuple(flat[a + "reverb_drr_db"])
    need(
        len(drr) == 2 and drr[0] <= drr[1], a + "reverb_drr_db", "must be (low, high), low <= high"
    )
    babble = tuple(flat[a + "babble_speakers"])
    need(
        len(babble) == 2 and 1 <= babble[0] <= babble[1] and all(int(b) == b for b in babble),
        a + "babble_speakers",
        "must be (low, high) integers with 1 <= low <= high",
    )
    need(
        isinstance(flat[a + "telephone_mulaw"], bool),
        a + "telephone_mulaw",
        "must be True or False",
    )
    need(
        flat["data.mixed.primary"] in SOURCE_KINDS,
        "data.mixed.primary",
        f"must be one of {', '.join(SOURCE_KINDS)}",
    )
    if flat["data.source"] == "mixed" or flat["data.mixed.train"]:
        parse_source_weights(flat["data.mixed.train"])


def validate_config(config, num_devices: int | None = None) -> None:
    """Check keys and values before anything compiles; raise ConfigError naming the key.

    Args:
      config: the experiment ConfigDict.
      num_devices: devices the run will use (checks batch divisibility), or None.
    """
    base = flatten(base_config())
    flat = flatten(config)
    unknown = sorted(set(flat) - set(base))
    if unknown:
        raise ConfigError(f"unknown config key(s): {', '.join(unknown)}")
    missing = sorted(set(base) - set(flat))
    if missing:
        raise ConfigError(f"missing config key(s): {', '.join(missing)}")

    def need(cond, key, msg):
        if not cond:
            raise ConfigError(f"{key}={flat[key]!r}: {msg}")

    need(flat["method"] in ("csc", "simclr"), "method", "must be 'csc' or 'simclr'")
    need(
        flat["parallel"] in ("sharding", "pmap"),
        "parallel",
        "must be 'sharding' or 'pmap'",
    )
    need(
        flat["dtype"] in ("float32", "bfloat16"),
        "dtype",
        "must be 'float32' or 'bfloat16'",
    )
    need(
        flat["data.source"] in (*SOURCE_KINDS, "mixed"),
        "data.source",
        "must be 'synthetic', 'folder', 'tfds' or 'mixed'",
    )
    _validate_augment(flat, need)
    need(
        flat["model.frontend"] in ("waveform", "stft"),
        "model.frontend",
        "must be 'waveform' or 'stft'",
    )
    need(flat["model.stft_hop"] >= 1, "model.stft_hop", "must be >= 1")
    need(
        flat["model.stft_window"] % 2 == 0
        and flat["model.stft_window"] >= 2 * flat["model.stft_hop"]
        and flat["model.stft_window"] % flat["model.stft_hop"] == 0,
        "model.stft_window",
        f"must be even and a multiple (>= 2) of model.stft_hop={flat['model.stft_hop']}",
    )
    need(flat["mixing.num_conditions"] >= 1, "mixing.num_conditions", "K must be >= 1")
    if flat["method"] == "simclr":
        need(
            flat["mixing.num_conditions"] >= 2,
            "mixing.num_conditions",
            "simclr needs 2 views (K >= 2)",
        )
    for key in ("mixing.sir_db", "mixing.snr_db"):
        lo_hi = flat[key]
        need(
            len(lo_hi) == 2 and lo_hi[0] <= lo_hi[1],
            key,
            "must be (low, high) with low <= high",
        )
    need(
        0.0 <= flat["mixing.noise_prob"] <= 1.0,
        "mixing.noise_prob",
        "must be in [0, 1]",
    )
    need(flat["data.batch_size"] >= 2, "data.batch_size", "must be >= 2 (interferers)")
    need(
        flat["model.enc_kernel"] >= 2 and flat["model.enc_kernel"] % 2 == 0,
        "model.enc_kernel",
        "must be an even number >= 2 (stride is L/2)",
    )
    segment = samples(flat["data.segment_seconds"], flat["data.sample_rate"])
    frame_key = "model.stft_window" if flat["model.frontend"] == "stft" else "model.enc_kernel"
    need(
        segment >= 2 * flat[frame_key],
        "data.segment_seconds",
        f"segment of {segment} samples is shorter than two front-end frames "
        f"({frame_key}={flat[frame_key]})",
    )
    for key in (
        "model.enc_filters",
        "model.bottleneck",
        "model.hidden",
        "model.blocks",
        "model.repeats",
        "model.speaker_dim",
        "model.attention_heads",
        "train.steps",
        "train.log_every",
        "train.checkpoint_every",
        "train.keep_checkpoints",
        "data.sample_rate",
    ):
        need(flat[key] >= 1, key, "must be >= 1")
    need(
        not flat["model.identity_init"]
        or flat["model.frontend"] == "stft"
        or flat["model.enc_filters"] >= 2 * flat["model.enc_kernel"],
        "model.identity_init",
        f"needs model.enc_filters >= 2 * model.enc_kernel (got {flat['model.enc_filters']} and "
        f"{flat['model.enc_kernel']})",
    )
    need(flat["model.extraction_blocks"] >= 0, "model.extraction_blocks", "must be >= 0")
    need(flat["model.conv_kernel"] % 2 == 1, "model.conv_kernel", "must be odd")
    need(
        flat["model.attention_dim"] % flat["model.attention_heads"] == 0,
        "model.attention_dim",
        "must be divisible by model.attention_heads",
    )
    need(
        flat["model.remat"] in ("none", "block", "repeat"),
        "model.remat",
        "must be 'none', 'block' or 'repeat'",
    )
    need(
        flat["model.remat_policy"] in ("nothing", "dots"),
        "model.remat_policy",
        "must be 'nothing' or 'dots'",
    )
    need(flat["loss.temperature"] > 0, "loss.temperature", "must be > 0")
    need(
        flat["eval.bootstrap_unit"] in ("speaker", "trial"),
        "eval.bootstrap_unit",
        "must be 'speaker' or 'trial'",
    )
    need(
        isinstance(flat["eval.query_scoring"], bool),
        "eval.query_scoring",
        "must be True or False",
    )
    need(
        isinstance(flat["eval.validation_on_test"], bool),
        "eval.validation_on_test",
        "must be True or False",
    )
    for key in ("eval.bootstrap_replicates", "eval.nontarget_per_target"):
        need(flat[key] >= 1, key, "must be >= 1")
    for key in ("eval.max_trials", "eval.extraction_max_trials", "eval.max_target_per_speaker"):
        need(flat[key] >= 0, key, "must be >= 0 (0 = all)")
    need(
        all(int(r) >= 8000 for r in flat["eval.reference_rates"]),
        "eval.reference_rates",
        "rates must be >= 8000 Hz",
    )
    need(
        flat["loss.stream_weights"] in ("components", "oracle", "mask"),
        "loss.stream_weights",
        "must be 'components', 'oracle' or 'mask'",
    )
    need(
        flat["loss.extraction_condition"] in ("global", "enrollment"),
        "loss.extraction_condition",
        "must be 'global' or 'enrollment'",
    )
    need(
        flat["loss.extraction_condition"] == "global"
        or flat["loss.stream_weights"] == "components",
        "loss.extraction_condition",
        "'enrollment' needs loss.stream_weights='components' (it conditions on their vectors)",
    )
    need(flat["optim.learning_rate"] > 0, "optim.learning_rate", "must be > 0")
    need(
        0 <= flat["loss.component_conditions"] <= flat["mixing.num_conditions"],
        "loss.component_conditions",
        "must be in [0, mixing.num_conditions] (0 = all conditions)",
    )
    if num_devices is not None:
        need(
            flat["data.batch_size"] % num_devices == 0,
            "data.batch_size",
            f"global batch is not divisible by the number of devices ({num_devices})",
        )
