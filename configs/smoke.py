"""Smoke test: the whole pipeline in about a minute on a 2-core CPU (train, validate, evaluate).

Command:
  python train.py --config configs/smoke.py --workdir /tmp/smoke

What it is for: checking that an installation works end to end before spending minutes or
hours on a real run. It generates a small embedded corpus (12 training, 8 test and 4
validation speakers, under data.cache_dir), trains a tiny CSC model (under 9 k parameters) for
150 steps on 0.25 s crops with the validation EER every 50 steps, then runs the verification
protocol (about 200 trials; clean, one noise and one interfering-speaker condition; 95 %
intervals from 200 bootstrap replicates) and writes <workdir>/eval/results.md. Its EERs mean
nothing: a tiny model trained 150 steps learns little. For results use configs/demo.py (make
demo). Then: python eval.py --workdir /tmp/smoke re-evaluates the run as it was trained, and
docs/usage.md shows embed, score and extract on your own audio. Measured: 38 s on a shared
2-core CPU, corpus generation included (tests/test_entry_points.py runs this command).
"""

from csc_jax.config import base_config


def get_config():
    c = base_config()
    # The embedded corpus, small: generated in a few seconds.
    s = c.data.synthetic
    s.num_train_speakers, s.train_utterances_per_speaker = 12, 4
    s.num_test_speakers, s.test_utterances_per_speaker = 8, 5
    s.num_val_speakers, s.val_utterances_per_speaker = 4, 3
    s.min_seconds, s.max_seconds = 0.6, 1.0
    c.data.segment_seconds = 0.25
    c.data.batch_size = 4
    c.mixing.num_conditions = 2
    # A tiny model: sizes only (the architecture, front end included, is the default one).
    m = c.model
    m.enc_filters, m.enc_kernel, m.bottleneck, m.hidden = 16, 32, 16, 32  # 2 ms frames at 16 kHz
    m.blocks, m.repeats, m.extraction_blocks = 2, 1, 1
    m.speaker_dim, m.attention_heads, m.attention_dim = 16, 2, 16
    c.optim.warmup_steps = 10
    c.train.steps = 150
    c.train.log_every = 25
    c.train.checkpoint_every = 50
    # A small protocol.
    c.eval.seconds = 0.5
    c.eval.batch_size = 8
    c.eval.max_trials = 200
    c.eval.noise_snr_db = (5.0,)
    c.eval.interferer_sir_db = (0.0,)
    c.eval.extraction_max_trials = 40
    c.eval.bootstrap_replicates = 200
    c.eval.reference_rates = ()
    c.eval.validation_every = 50
    c.eval.validation_trials = 60
    return c
