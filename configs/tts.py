"""CSC on the local corpus of recorded MBROLA voices (docs/tts_corpus.md), at the default's 16 kHz.

Build the corpus once (Debian packages, then about 3 minutes of synthesis on 2 cores):

  sudo scripts/install_tts_voices.sh
  python scripts/make_tts_corpus.py --out cache/tts_corpus_v2

Command:
  python train.py --config configs/tts.py --workdir runs/tts

Everything but the data is the CPU demo's config (configs/default.py; since the time-frequency
front end became the default, this config has not been trained again: results on this corpus
in docs/ are from the 8 kHz waveform model): 41 training voices
(2460 utterances), evaluated on all 7560 trials of the 21 held-out voices under the same noise
and interfering-speaker conditions. Results on the first version of this corpus
(cache/tts_corpus: 20 English-reading voices, 4 held out) are not comparable with this one.
"""

from csc_jax.config import base_config

ROOT = "cache/tts_corpus_v2"


def get_config():
    c = base_config()
    c.data.source = "folder"
    c.data.folder.train_root = f"{ROOT}/train"
    c.data.folder.test_root = f"{ROOT}/val"
    c.data.folder.trials = f"{ROOT}/trials_val.txt"
    return c
