"""Audio files in and out for inference: any wav/flac/ogg at any rate and channel count.

* :func:`read_audio` decodes a file with soundfile, averages the channels to mono and resamples
  to the model rate with soxr: ``float32 (T,)`` at ``sample_rate``.
* :func:`audio_length` predicts ``T`` from the file header without decoding (used to plan
  length buckets before any audio is read).
* :func:`write_wav` writes ``(T,)`` float audio as 16-bit PCM wav, atomically, refusing to
  replace an existing file unless ``overwrite=True``.

Numpy, soundfile and soxr only (no JAX), so command-line tools can check their inputs and
outputs before the model is loaded.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import warnings

import numpy as np
import soundfile
import soxr

from csc_jax.data.sources import resampled_length
from csc_jax.errors import BadAudioFileError

__all__ = [
    "BadAudioFileError",
    "audio_length",
    "check_output_path",
    "read_audio",
    "write_wav",
]


def _require_file(path: str | os.PathLike) -> str:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"audio file not found: {path}")
    if os.path.isdir(path):
        raise BadAudioFileError(path, "is a directory, expected an audio file")
    return path


def _info(path: str) -> soundfile._SoundFileInfo:
    try:
        return soundfile.info(path)
    except Exception as e:  # any decoder failure is reported with the file name
        raise BadAudioFileError(path, f"cannot read audio header ({type(e).__name__}: {e})") from e


def audio_length(path: str | os.PathLike, sample_rate: int) -> int:
    """Samples that :func:`read_audio` returns for ``path`` at ``sample_rate`` (header only).

    Raises:
      FileNotFoundError: the file does not exist (the message names it).
      BadAudioFileError: the header cannot be read (``.path`` names the file).
    """
    path = _require_file(path)
    info = _info(path)
    return resampled_length(int(info.frames), int(info.samplerate), int(sample_rate))


def read_audio(path: str | os.PathLike, sample_rate: int) -> np.ndarray:
    """Decode ``path`` to mono float32 at ``sample_rate``.

    Channels are averaged (a stereo file gives the mean of its channels); a file at another
    rate is resampled with soxr (high quality). The length equals :func:`audio_length` (the
    resampler may be off by one sample at the edges; that sample is cropped or zero-padded).

    Args:
      path: wav / flac / ogg (anything libsndfile decodes), any sample rate and channel count.
      sample_rate: the rate to return, Hz.

    Returns:
      float32 (T,) in the file's [-1, 1] scale.

    Raises:
      FileNotFoundError: the file does not exist.
      BadAudioFileError: undecodable, empty, or containing NaN/Inf (``.path`` names the file).
    """
    path = _require_file(path)
    try:
        x, rate = soundfile.read(path, dtype="float32", always_2d=True)
    except Exception as e:
        raise BadAudioFileError(path, f"cannot decode ({type(e).__name__}: {e})") from e
    if x.shape[0] == 0:
        raise BadAudioFileError(path, "contains no samples")
    # Mean in float64: channels of opposite sign must not lose precision before the sum.
    mono = x.mean(axis=1, dtype=np.float64) if x.shape[1] > 1 else x[:, 0]
    mono = np.asarray(mono, np.float32)
    if not np.isfinite(mono).all():
        raise BadAudioFileError(path, "contains NaN/Inf samples")
    if int(rate) != int(sample_rate):
        expected = resampled_length(mono.shape[0], int(rate), int(sample_rate))
        mono = soxr.resample(mono, int(rate), int(sample_rate)).astype(np.float32, copy=False)
        if mono.shape[0] > expected:
            mono = mono[:expected]
        elif mono.shape[0] < expected:
            mono = np.pad(mono, (0, expected - mono.shape[0]))
        if mono.shape[0] == 0:
            raise BadAudioFileError(path, f"shorter than one sample at {sample_rate} Hz")
    return np.ascontiguousarray(mono)


def check_output_path(path: str | os.PathLike, overwrite: bool) -> str:
    """Refuse to replace an existing ``path`` unless ``overwrite``; check its folder exists.

    Raises:
      FileExistsError: ``path`` exists and ``overwrite`` is False (the message names it).
      FileNotFoundError: the parent directory does not exist.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"output path {path} is a directory")
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"output file {path} already exists; pass --overwrite to replace it")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise FileNotFoundError(f"output directory {parent} (for {path}) does not exist")
    return path


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, overwrite: bool = False):
    """Yield a temporary path next to ``path``; rename it onto ``path`` when the block succeeds.

    A crash or error inside the block leaves no partial output (and an old file untouched).
    """
    path = check_output_path(path, overwrite)
    directory, name = os.path.split(os.path.abspath(path))
    ext = os.path.splitext(name)[1]
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=f".tmp{ext}", dir=directory)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; outputs are ordinary files
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def write_wav(
    path: str | os.PathLike, waveform: np.ndarray, sample_rate: int, *, overwrite: bool = False
) -> str:
    """Write ``(T,)`` float audio as a mono 16-bit PCM wav at ``sample_rate``.

    A waveform whose peak exceeds 1 would clip in 16 bits; it is scaled down to a 0.99 peak
    instead (with a warning), since model outputs have no guaranteed level.

    Raises:
      FileExistsError: ``path`` exists and ``overwrite`` is False.
      ValueError: not 1-D, empty, or non-finite.
    """
    x = np.asarray(waveform, np.float32)
    if x.ndim != 1 or x.shape[0] == 0:
        raise ValueError(f"write_wav({os.fspath(path)}): expected (T,) audio, got {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"write_wav({os.fspath(path)}): waveform contains NaN/Inf")
    peak = float(np.max(np.abs(x)))
    if peak > 1.0:
        warnings.warn(
            f"{os.fspath(path)}: peak {peak:.3g} > 1, scaled to 0.99 to avoid clipping",
            RuntimeWarning,
            stacklevel=2,
        )
        x = x * np.float32(0.99 / peak)
    pcm = np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16)
    with atomic_output(path, overwrite) as tmp:
        soundfile.write(tmp, pcm, int(sample_rate), subtype="PCM_16", format="WAV")
    return os.fspath(path)
