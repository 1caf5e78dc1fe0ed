"""VoxCeleb-style folder corpora at 16 kHz: CSC with the GPU config's trunk, 3 s crops, K=3.

What it is for: training on real speech in the VoxCeleb layout
(``<speaker>/<session>/<utterance>.wav``), e.g. VoxCeleb2 dev (5,994 speakers), and scoring
the VoxCeleb1-O trial list, on one GPU of 40 GB or more. The trunk is configs/gpu.py's
(N=256, B=128, H=512, X=8, R=3, block remat) with a 2 ms / 32-sample encoder window at
16 kHz, so a second of audio gives the same 1000 frames as at 8 kHz.

Command (VoxCeleb2 dev for training, VoxCeleb1 test with veri_test2.txt for evaluation):
  python train.py --config configs/voxceleb.py --workdir runs/vox \\
      --config.data.folder.train_root=/data/voxceleb2/dev/aac_wav \\
      --config.data.folder.test_root=/data/voxceleb1/test/wav \\
      --config.data.folder.trials=/data/voxceleb1/veri_test2.txt

The three paths have no default. Without train_root (or test_root, for the evaluation)
training stops before anything is built or compiled with an error naming the key; without
trials a trial list is generated from the test folder (README, "Train on your own data").
VoxCeleb2 is distributed as AAC (.m4a), which libsndfile does not decode: convert it to
.wav or .flac first, keeping the layout (e.g. with ffmpeg, into dev/aac_wav). Any sample
rate is resampled to 16 kHz. Add --config.data.folder.on_bad_file=skip to skip unreadable
files instead of stopping at the first one.

Memory and cost: docs/gpu_memory.md (XLA's static estimate of the step, compiled on a CPU)
and README's config table. Result: not measured. data.batch_size is the global batch: raise
it with the number of devices.
"""

from pathlib import Path

from csc_jax.config import load_config_file


def get_config():
    c = load_config_file(str(Path(__file__).with_name("gpu.py")))
    c.data.source = "folder"
    c.data.sample_rate = 16000
    c.data.segment_seconds = 3.0
    c.data.batch_size = 16
    c.data.num_workers = 8
    c.data.folder.train_root = ""  # required: --config.data.folder.train_root=...
    c.data.folder.test_root = ""  # required for the evaluation
    c.data.folder.trials = ""  # VoxCeleb1-O: veri_test2.txt; "" = generated from test_root
    c.model.enc_kernel = 32  # 2 ms at 16 kHz, hop 1 ms: the gpu config's frame rate
    c.optim.warmup_steps = 2000
    c.train.steps = 200_000
    # The whole VoxCeleb1-O list (37,611 trials) on utterances cropped or wrap-padded to 6 s.
    c.eval.seconds = 6.0
    c.eval.max_trials = 0
    return c
