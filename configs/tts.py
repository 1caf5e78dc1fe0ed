"""CSC on the local corpus of recorded MBROLA voices (docs/tts_corpus.md), at 8 kHz.

Build the corpus once (Debian packages, then about 20 s of synthesis):

  sudo scripts/install_tts_voices.sh
  python scripts/make_tts_corpus.py --out cache/tts_corpus

Command:
  python train.py --config configs/tts.py --workdir runs/tts

Everything but the data is the CPU demo's config (configs/default.py): the training voices,
evaluated on the held-out voices' trial list under the same noise and interfering-speaker
conditions. Measured results: docs/results_tts.md.
"""

from csc_jax.config import base_config

ROOT = "cache/tts_corpus"


def get_config():
    c = base_config()
    c.data.source = "folder"
    c.data.folder.train_root = f"{ROOT}/train"
    c.data.folder.test_root = f"{ROOT}/val"
    c.data.folder.trials = f"{ROOT}/trials_val.txt"
    return c
