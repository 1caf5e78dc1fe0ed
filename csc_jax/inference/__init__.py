"""Use a trained model: speaker embeddings, verification scores and target-speaker extraction.

Python::

    import csc_jax
    model = csc_jax.load("runs/demo")              # a workdir, its checkpoints/ or checkpoints/<n>
    emb = model.embed(["a.wav", "b.flac"])         # (2, D) float32, unit norm
    model.score("a.wav", "b.flac")                 # cosine score
    model.verify("trials.txt", "wav_root/")        # {'eer': %, 'min_dcf': ..., 'num_trials': ...}
    target = model.extract("mix.wav", "enroll.wav")  # (T,) float32 at model.sample_rate

Command line (through ``eval.py`` or the installed ``csc-jax`` script): :mod:`.cli`.

Modules:

* :mod:`.batched`: :class:`BatchedModel`, the one jitted wrapper of ``model.apply`` (embed,
  global_vectors, extract) shared with the evaluation protocol;
* :mod:`.speaker_model`: :class:`SpeakerModel`, files and arrays of any length (length
  bucketing, piece splitting, verify);
* :mod:`.loading`: :func:`load`, a workdir's config and checkpoint as a SpeakerModel;
* :mod:`.cli`: the argparse command line.

``import csc_jax.inference`` does not import JAX (only building a model does), so the command
line checks its inputs and output before JAX starts.
"""

from csc_jax.inference.loading import load, resolve_workdir
from csc_jax.inference.speaker_model import SpeakerModel

__all__ = ["SpeakerModel", "load", "resolve_workdir"]
