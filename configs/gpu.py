"""Larger CSC run for one GPU/TPU host: 8 kHz, 2 s crops, K=3, a Conv-TasNet-sized trunk.

Command:
  python train.py --config configs/gpu.py --workdir runs/gpu

Cost (measured on one NVIDIA H200, 139 GiB, jax 0.11.2, with `python benchmark.py
--config=configs/benchmark.py:gpu --mode=train --parallel=sharding --dtype=float32,bfloat16
--batch_sizes=8,16 --steps=10 --warmup=3`, which stopped at B=16; log in docs/gpu_h200/):
B=8 float32 144.5 ms/step (332 mixture audio s/s), compile 50.5 s; XLA's static estimate of
the step's temporaries is 91.5 GiB (compiled on CPU), so it does not fit an 80 GB H100: use
--config.data.batch_size=4 there (not measured). B=16 and B=64 ran out of memory on the H200.
B=2: 55.7 ms/step float32, 45.7 ms/step bfloat16. The memory goes to the TCN activations of
3 x B x K waveforms (mixtures plus the clean components the loss embeds, docs/method.md).
Result: not measured (100k steps = about 4 h of H200 time at B=8). data.batch_size is the
global batch: raise it with the number of devices.
"""

from csc_jax.config import base_config


def get_config():
    c = base_config()
    c.data.segment_seconds = 2.0
    c.data.batch_size = 8
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
