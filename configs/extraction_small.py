"""The smallest CSC model that extracts a target speaker from a two-talker mixture.

Command:
  python train.py --config configs/extraction_small.py --workdir runs/extraction_small
  python scripts/eval_extraction.py --workdir runs/extraction_small

A demo-sized trunk cut down (N=64, L=32: 4 ms frames at 8 kHz; B=32, H=64, 3 TCN blocks, one
extraction block; 44 k parameters) and started at the identity (`model.identity_init`),
trained on two-talker mixtures without noise (K=2, 0.5 s crops, batch 8) of a small embedded
corpus (40 training speakers). tests/test_extraction_quality.py trains exactly this config.
Measured cost and extraction quality: README "Use a trained model", docs/method.md
"Initialisation".
"""

from csc_jax.config import base_config


def get_config():
    c = base_config()
    c.model.frontend = "waveform"  # the smallest waveform model that extracts, at 8 kHz
    c.data.sample_rate = 8000
    c.data.segment_seconds = 0.5
    c.data.batch_size = 8
    s = c.data.synthetic
    s.num_train_speakers, s.num_test_speakers = 40, 12
    s.train_utterances_per_speaker = s.test_utterances_per_speaker = 3
    s.min_seconds, s.max_seconds = 0.5, 0.8
    c.mixing.num_conditions = 2
    c.mixing.noise_prob = 0.0
    m = c.model
    m.enc_filters, m.enc_kernel, m.bottleneck, m.hidden = 64, 32, 32, 64
    m.blocks, m.repeats, m.extraction_blocks = 3, 1, 1
    m.speaker_dim, m.attention_heads, m.attention_dim = 32, 2, 32
    m.identity_init = True
    c.optim.warmup_steps = 1
    c.optim.learning_rate = 3e-3
    c.train.steps = 1200
    c.train.log_every = 100
    c.train.checkpoint_every = 400
    c.eval.seconds = 0.5
    c.eval.max_trials = 40
    c.eval.batch_size = 8
    return c
