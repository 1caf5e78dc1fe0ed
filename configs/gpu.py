"""Larger CSC run for one GPU/TPU host: 8 kHz, 2 s crops, K=3, a Conv-TasNet-sized trunk.

Command:
  python train.py --config configs/gpu.py --workdir runs/gpu

Cost and result: not measured yet (no accelerator was available when this config was
written); the CPU demo's figures are in README "Results". Expect roughly 100x the CPU demo's
compute per step; raise data.batch_size with the number of devices (it is the global batch).
"""

from csc_jax.config import base_config


def get_config():
    c = base_config()
    c.data.segment_seconds = 2.0
    c.data.batch_size = 32
    c.data.num_workers = 4
    c.data.synthetic.num_train_speakers = 1000
    c.data.synthetic.train_utterances_per_speaker = 10
    c.model.enc_filters = 256
    c.model.enc_kernel = 16
    c.model.bottleneck = 128
    c.model.hidden = 512
    c.model.blocks = 8
    c.model.repeats = 3
    c.model.extraction_blocks = 4
    c.model.speaker_dim = 192
    c.model.attention_heads = 8
    c.model.attention_dim = 256
    c.optim.learning_rate = 1e-3
    c.optim.warmup_steps = 1000
    c.train.steps = 100_000
    c.train.log_every = 100
    c.train.checkpoint_every = 2000
    c.eval.seconds = 4.0
    c.eval.max_trials = 0
    return c
