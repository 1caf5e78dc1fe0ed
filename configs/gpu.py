"""One GPU, 8 kHz: CSC with a Conv-TasNet-sized trunk, 2 s crops, K=3, B=32, block remat.

What it is for: training the method at the size of Conv-TasNet's separation backbone (N=256,
L=16, B=128, H=512, X=8, R=3, 4 extraction blocks) on the embedded procedural corpus, on one
GPU of 40 GB or more. The TCN blocks are rematerialised (``model.remat='block'``): their
activations are recomputed in the backward pass instead of kept, which is what lets B=32
fit (without it, B=8 already exceeds an 80 GB card by the same estimate).

Command:
  python train.py --config configs/gpu.py --workdir runs/gpu

Memory and cost: docs/gpu_memory.md (XLA's static estimates of the step, compiled on a CPU,
for this config and other B and crop lengths, with the commands to re-estimate) and README's
config table; measured GPU step times are in docs/performance.md. On a smaller card lower
--config.data.batch_size (docs/gpu_memory.md says which B fits which card).
data.batch_size is the global batch: raise it with the number of devices.
"""

from csc_jax.config import base_config


def get_config():
    c = base_config()
    c.model.frontend = "waveform"  # the Conv-TasNet-sized waveform model at 8 kHz
    c.data.sample_rate = 8000
    c.eval.reference_rates = (16000,)
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
    c.model.remat = "block"
    c.optim.learning_rate = 1e-3
    c.optim.warmup_steps = 1000
    c.train.steps = 100_000
    c.train.log_every = 100
    c.train.checkpoint_every = 2000
    c.eval.seconds = 4.0
    c.eval.max_trials = 0
    return c
