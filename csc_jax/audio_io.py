"""Audio files in and out: the one place that decodes, downmixes and resamples audio.

* :func:`read_audio` decodes a file with soundfile, averages the channels to mono and resamples
  to the model rate with soxr: ``float32 (T,)`` at ``sample_rate``.
* :func:`audio_length` predicts ``T`` from the file header without decoding (used to plan
  length buckets before any audio is read).
* :func:`check_audio_file` decodes every sample of a file once and returns its header facts,
  or raises naming the file (unreadable, empty, NaN/Inf samples): the data sources' index check.
* :func:`decode` (a frame range, mono, finite), :func:`to_mono`, :func:`check_finite`,
  :func:`resample` and :func:`resampled_length`: the building blocks every reader shares.
* :func:`check_not_silent`: silent or near-silent audio (RMS below ``SILENCE_DBFS``) is an
  error naming the file: there is no speaker in it to embed or extract.
* :func:`write_audio` writes ``(T,)`` float audio in the format of the file's extension
  (:func:`output_format`: 16-bit PCM where the format has it), atomically
  (:mod:`csc_jax.io_utils`), refusing to replace an existing file unless ``overwrite=True``;
  :func:`write_wav` is the same for a .wav file.

Numpy, soundfile and soxr only (no JAX), so command-line tools can check their inputs and
outputs before the model is loaded. Every failure caused by a file is a
:class:`~csc_jax.errors.BadAudioFileError` whose ``.path`` names it.
"""

from __future__ import annotations

import dataclasses
import os
import warnings

import numpy as np
import soundfile
import soxr

from csc_jax.errors import BadAudioFileError, ConfigError
from csc_jax.io_utils import atomic_output, check_output_path

__all__ = [
    "SILENCE_DBFS",
    "AudioFileInfo",
    "audio_length",
    "audio_rate",
    "check_audio_file",
    "check_finite",
    "check_not_silent",
    "decode",
    "is_system_error",
    "output_format",
    "read_audio",
    "resample",
    "resampled_length",
    "to_mono",
    "write_audio",
    "write_wav",
]

# Frames decoded per read while checking a whole file: bounds memory for hour-long files.
_CHECK_BLOCK_FRAMES = 1 << 20
# libsndfile's SF_ERR_SYSTEM: the OS refused the read (permissions, I/O error), not the content.
_SF_ERR_SYSTEM = 2
# Audio whose RMS level is below this (dB relative to full scale) holds no usable speech.
SILENCE_DBFS = -60.0
# Extensions whose name is not their libsndfile format's.
_FORMAT_ALIASES = {"aif": "AIFF", "oga": "OGG"}


def resampled_length(num_frames: int, orig_rate: int, target_rate: int) -> int:
    """Number of samples `soxr.resample` returns: ``round(num_frames * target / orig)``, halves up.

    soxr rounds halves up (``round()`` would round 500.5 to 500), hence the integer form.
    """
    return (2 * num_frames * target_rate + orig_rate) // (2 * orig_rate)


def _why(e: BaseException) -> str:
    # libsndfile's own text without its "Error opening '<path>': " prefix (the path is named
    # once, by BadAudioFileError).
    text = getattr(e, "error_string", None) or str(e)
    return f"{type(e).__name__}: {text}"


def is_system_error(e: BaseException | None) -> bool:
    """Whether a decoding failure came from the OS (may pass on retry) rather than the bytes."""
    return isinstance(e, OSError) or getattr(e, "code", None) == _SF_ERR_SYSTEM


def to_mono(x: np.ndarray, name: str | os.PathLike) -> np.ndarray:
    """(frames,) or (frames, channels) int/float audio -> float32 (frames,) in the file's scale.

    Channels are averaged in float64: channels of opposite sign must not lose precision
    before the sum.
    """
    if x.ndim == 2:
        x = x.mean(axis=1, dtype=np.float64) if x.shape[1] > 1 else x[:, 0]
    elif x.ndim != 1:
        raise BadAudioFileError(
            name, f"expected audio of shape (frames,) or (frames, channels), got {x.shape}"
        )
    return np.asarray(x, dtype=np.float32)


def check_finite(x: np.ndarray, name: str | os.PathLike) -> None:
    """Raise BadAudioFileError naming ``name`` if ``x`` holds a NaN or Inf."""
    finite = np.isfinite(x)
    if not finite.all():
        bad = int(np.size(x) - np.count_nonzero(finite))
        raise BadAudioFileError(name, f"contains {bad} NaN/Inf sample(s)")


def resample(
    x: np.ndarray, orig_rate: int, target_rate: int, length: int | None = None
) -> np.ndarray:
    """float32 (frames,) at ``orig_rate`` -> float32 (resampled_length(frames),) with soxr (HQ).

    soxr may differ from the predicted length by a sample at the edges; that sample is cropped
    or zero-padded, so the length is always the one predicted from the header, or ``length``
    when given (e.g. a file's own length when audio read from it goes back to its rate).
    """
    orig_rate, target_rate = int(orig_rate), int(target_rate)
    expected = resampled_length(x.shape[0], orig_rate, target_rate) if length is None else length
    if orig_rate == target_rate and x.shape[0] == expected:
        return x
    y = soxr.resample(x, orig_rate, target_rate).astype(np.float32, copy=False)
    if y.shape[0] > expected:
        return y[:expected]
    if y.shape[0] < expected:
        return np.pad(y, (0, expected - y.shape[0]))
    return y


def decode(
    path: str | os.PathLike,
    start: int = 0,
    stop: int | None = None,
    *,
    expected_frames: int | None = None,
) -> tuple[np.ndarray, int]:
    """Frames ``[start, stop)`` of ``path`` as mono float32, and the file's sample rate.

    Args:
      path: anything libsndfile decodes.
      start, stop: frame range (``stop=None``: to the end).
      expected_frames: the number of frames the range must hold (the caller's index), or None.

    Returns:
      (float32 (frames,) in the file's [-1, 1] scale, sample rate in Hz).

    Raises:
      BadAudioFileError: undecodable, fewer/more frames than expected, or NaN/Inf samples.
    """
    path = os.fspath(path)
    try:
        x, rate = soundfile.read(path, start=start, stop=stop, dtype="float32", always_2d=True)
    except Exception as e:  # any decoder failure is reported with the file name
        raise BadAudioFileError(path, f"cannot decode ({_why(e)})") from e
    if expected_frames is not None and x.shape[0] != expected_frames:
        raise BadAudioFileError(
            path,
            f"read {x.shape[0]} frames, expected {expected_frames} (truncated or changed file)",
        )
    mono = to_mono(x, path)
    check_finite(mono, path)
    return mono, int(rate)


@dataclasses.dataclass(frozen=True)
class AudioFileInfo:
    """What :func:`check_audio_file` learnt: rate (Hz), decoded frames and channels."""

    sample_rate: int
    frames: int
    channels: int


def check_audio_file(path: str | os.PathLike) -> AudioFileInfo:
    """Decode every sample of ``path`` once (in blocks) and return its rate, frames, channels.

    ``frames`` is the number of frames actually decoded (a truncated file's header may claim
    more). Costs one full decode per file; callers cache the result.

    Raises:
      BadAudioFileError: an empty (0-byte) or unreadable file, an invalid header, zero frames,
        or NaN/Inf samples (the message gives their count and the first frame). The OS error
        of an unreadable file, if any, is the exception's ``__cause__``.
    """
    path = os.fspath(path)
    frames = bad = 0
    first_bad = -1
    try:
        if os.path.getsize(path) == 0:
            raise BadAudioFileError(path, "empty file (0 bytes)")
        with soundfile.SoundFile(path) as f:
            rate, channels = int(f.samplerate), int(f.channels)
            if rate <= 0 or channels <= 0:
                raise BadAudioFileError(path, f"invalid header (rate {rate}, {channels} channels)")
            while True:
                block = f.read(_CHECK_BLOCK_FRAMES, dtype="float32", always_2d=True)
                if block.shape[0] == 0:
                    break
                finite = np.isfinite(block).all(axis=1)
                if not finite.all():
                    if first_bad < 0:
                        first_bad = frames + int(np.argmin(finite))
                    bad += int(block.size - np.count_nonzero(np.isfinite(block)))
                frames += block.shape[0]
    except BadAudioFileError:
        raise
    except Exception as e:  # noqa: BLE001 - libsndfile raises several types for corrupt files
        raise BadAudioFileError(path, f"unreadable ({_why(e)})") from e
    if frames == 0:
        raise BadAudioFileError(path, "zero-length audio (0 frames)")
    if bad:
        raise BadAudioFileError(
            path, f"contains {bad} NaN/Inf sample(s), the first at frame {first_bad}"
        )
    return AudioFileInfo(sample_rate=rate, frames=frames, channels=channels)


def _require_file(path: str | os.PathLike) -> str:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"audio file not found: {path}")
    if os.path.isdir(path):
        raise BadAudioFileError(path, "is a directory, expected an audio file")
    return path


def _header(path: str | os.PathLike):
    path = _require_file(path)
    try:
        return soundfile.info(path)
    except Exception as e:  # any decoder failure is reported with the file name
        raise BadAudioFileError(path, f"cannot read audio header ({_why(e)})") from e


def audio_length(path: str | os.PathLike, sample_rate: int) -> int:
    """Samples that :func:`read_audio` returns for ``path`` at ``sample_rate`` (header only).

    Raises:
      FileNotFoundError: the file does not exist (the message names it).
      BadAudioFileError: the header cannot be read (``.path`` names the file).
    """
    info = _header(path)
    return resampled_length(int(info.frames), int(info.samplerate), int(sample_rate))


def audio_rate(path: str | os.PathLike) -> int:
    """The sample rate (Hz) of the file ``path`` (header only; errors as :func:`audio_length`)."""
    return int(_header(path).samplerate)


def check_not_silent(x: np.ndarray, name: str | os.PathLike) -> None:
    """Raise BadAudioFileError naming ``name`` if ``x`` is silent or near-silent: its RMS level
    is below ``SILENCE_DBFS`` (-60 dBFS), e.g. all zeros or a muted recording."""
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0
    if rms < 10.0 ** (SILENCE_DBFS / 20.0):
        level = "all zeros" if rms == 0.0 else f"RMS {20.0 * np.log10(rms):.1f} dBFS"
        raise BadAudioFileError(
            name,
            f"silent or near-silent audio ({level}, below {SILENCE_DBFS:g} dBFS): no speech to use",
        )


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
    mono, rate = decode(path)
    if mono.shape[0] == 0:
        raise BadAudioFileError(path, "contains no samples")
    mono = resample(mono, rate, sample_rate)
    if mono.shape[0] == 0:
        raise BadAudioFileError(path, f"shorter than one sample at {sample_rate} Hz")
    return np.ascontiguousarray(mono)


def output_format(path: str | os.PathLike) -> tuple[str, str]:
    """(libsndfile format, subtype) that :func:`write_audio` uses for ``path``'s extension:
    16-bit PCM where the format has it (wav, flac, aiff, ...), else its default (ogg: Vorbis).

    Raises:
      ConfigError: an extension that names no audio format libsndfile can write.
    """
    ext = os.path.splitext(os.fspath(path))[1].lower().lstrip(".")
    fmt = _FORMAT_ALIASES.get(ext, ext.upper())
    if not ext or fmt not in soundfile.available_formats() or fmt == "RAW":
        known = ", ".join(f".{f.lower()}" for f in ("WAV", "FLAC", "OGG", "AIFF"))
        raise ConfigError(
            f"{os.fspath(path)}: unknown audio file extension {'.' + ext if ext else '(none)'!r}; "
            f"the extension picks the format, e.g. {known}"
        )
    subtype = "PCM_16" if soundfile.check_format(fmt, "PCM_16") else soundfile.default_subtype(fmt)
    return fmt, subtype


def write_audio(
    path: str | os.PathLike, waveform: np.ndarray, sample_rate: int, *, overwrite: bool = False
) -> str:
    """Write ``(T,)`` float audio, mono, in the format of ``path``'s extension
    (:func:`output_format`).

    A waveform whose peak exceeds 1 would clip; it is scaled down to a 0.99 peak instead (with
    a warning), since model outputs have no guaranteed level.

    Raises:
      ConfigError: an unknown extension.
      OutputExistsError: ``path`` exists and ``overwrite`` is False.
      ValueError: not 1-D, empty, or non-finite.
    """
    fmt, subtype = output_format(path)
    x = np.asarray(waveform, np.float32)
    if x.ndim != 1 or x.shape[0] == 0:
        raise ValueError(f"write_audio({os.fspath(path)}): expected (T,) audio, got {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"write_audio({os.fspath(path)}): waveform contains NaN/Inf")
    peak = float(np.max(np.abs(x)))
    if peak > 1.0:
        warnings.warn(
            f"{os.fspath(path)}: peak {peak:.3g} > 1, scaled to 0.99 to avoid clipping",
            RuntimeWarning,
            stacklevel=2,
        )
        x = x * np.float32(0.99 / peak)
    if subtype == "PCM_16":  # rounded here, as 32768 * x, so a read back is exact
        x = np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16)
    check_output_path(path, overwrite)  # also with overwrite: a folder or a missing parent
    with atomic_output(path, overwrite) as tmp:
        soundfile.write(tmp, x, int(sample_rate), subtype=subtype, format=fmt)
    return os.fspath(path)


def write_wav(
    path: str | os.PathLike, waveform: np.ndarray, sample_rate: int, *, overwrite: bool = False
) -> str:
    """:func:`write_audio` to a .wav path: a mono 16-bit PCM wav at ``sample_rate``."""
    if output_format(path)[0] != "WAV":
        raise ValueError(f"write_wav({os.fspath(path)}): not a .wav path")
    return write_audio(path, waveform, sample_rate, overwrite=overwrite)
