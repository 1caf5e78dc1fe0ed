"""One utterance: a voice (voices.py) speaking random syllables (phones.py) through the
source-filter synthesiser, a session channel, then quantised to 16-bit values.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import scipy.signal

from csc_jax.data.synthetic.filters import (
    high_shelf_ba,
    peaking_ba,
    resonator_a,
    smooth,
    time_varying_allpole,
    upsample,
)
from csc_jax.data.synthetic.params import (
    KIND_SESSION,
    KIND_UTTERANCE,
    MAX_SECONDS,
    MIN_SECONDS,
    NUM_SESSIONS,
    seeded_rng,
    validate_sample_rate,
    validate_split,
)
from csc_jax.data.synthetic.phones import (
    BANDWIDTHS,
    F4_REFERENCE,
    FRICATION_BANDS,
    utterance_segments,
)
from csc_jax.data.synthetic.voices import speaker_voice

# Formant targets are held constant over blocks of this length (Klatt used 5 ms frames).
_BLOCK_SECONDS = 0.005
# Waveforms are q / PCM_SCALE with integer |q| <= 32767: lossless as 16-bit PCM.
PCM_SCALE = 32768.0
_PEAK_LIMIT = 0.95


@functools.lru_cache(maxsize=4096)
def _frication_filter(band: int, tract: float, sr: int) -> tuple[np.ndarray, float]:
    """Band-pass sos for a frication band of a voice, and its RMS gain for white noise."""
    lo, hi = FRICATION_BANDS[band]
    hi = min(hi * tract, 0.46 * sr)
    lo = min(lo * tract, 0.7 * hi)
    sos = scipy.signal.butter(2, [lo, hi], btype="bandpass", fs=sr, output="sos")
    impulse = np.zeros(sr)
    impulse[0] = 1.0
    return sos, float(np.sqrt(np.sum(scipy.signal.sosfilt(sos, impulse) ** 2)))


def _session_channel(seed: int, split: str, speaker: int, session: int, sr: int):
    """Gentle random EQ (sos) and noise-floor SNR (dB) of one recording session."""
    rng = seeded_rng(seed, split, speaker, KIND_SESSION, session)
    sections = [scipy.signal.butter(1, rng.uniform(50.0, 150.0), "highpass", fs=sr, output="sos")]
    for _ in range(2):
        freq = float(np.exp(rng.uniform(np.log(250.0), np.log(0.4 * sr))))
        b, a = peaking_ba(freq, rng.uniform(-3.5, 3.5), rng.uniform(0.7, 2.0), sr)
        sections.append(np.concatenate([b, a])[None])
    b, a = high_shelf_ba(min(2500.0, 0.3 * sr), rng.uniform(-4.0, 2.0), sr)
    sections.append(np.concatenate([b, a])[None])
    return np.concatenate(sections), float(rng.uniform(35.0, 50.0))


def synthesize_utterance(
    seed: int,
    split: str,
    speaker_index: int,
    utterance_index: int,
    sample_rate: int,
    *,
    min_seconds: float,
    max_seconds: float,
) -> np.ndarray:
    """One utterance, float32 (num_samples,), num_samples uniform in [min, max] seconds.

    Depends only on its arguments (not on which other utterances are generated).
    """
    validate_split(split)
    sr = validate_sample_rate(sample_rate)
    for name, index in (("speaker_index", speaker_index), ("utterance_index", utterance_index)):
        if index < 0:
            raise ValueError(f"{name} must be >= 0, got {index!r}")
    if not MIN_SECONDS <= min_seconds <= max_seconds <= MAX_SECONDS:
        raise ValueError(
            f"need {MIN_SECONDS} <= min_seconds <= max_seconds <= {MAX_SECONDS}, got "
            f"min_seconds={min_seconds!r}, max_seconds={max_seconds!r}"
        )
    if math.ceil(min_seconds * sr) > math.floor(max_seconds * sr):
        raise ValueError(
            f"no whole number of samples at {sr} Hz lies in [min_seconds={min_seconds!r}, "
            f"max_seconds={max_seconds!r}]"
        )
    voice = speaker_voice(seed, split, speaker_index)
    rng = seeded_rng(seed, split, speaker_index, KIND_UTTERANCE, utterance_index)
    num_samples = int(rng.integers(math.ceil(min_seconds * sr), math.floor(max_seconds * sr) + 1))
    block = round(_BLOCK_SECONDS * sr)

    # Per-utterance variation around the voice: pitch, rate, vocal effort, loudness.
    f0_mean = voice.f0 * float(np.exp(rng.normal(0.0, 0.06)))
    rate = voice.rate * float(np.exp(rng.normal(0.0, 0.08)))
    bw_scale = voice.bw_scale * float(np.exp(rng.normal(0.0, 0.05)))
    level_db = float(rng.uniform(-28.0, -18.0))

    # ---- segment targets -> per-block tracks
    segments, durations, accented = utterance_segments(rng, rate, num_samples / sr + 0.1)
    counts = np.maximum(1, np.round(np.array(durations) / _BLOCK_SECONDS).astype(np.int64))
    # Rounding to whole blocks can lose a little time; the last segment absorbs any shortfall.
    shortfall = num_samples - int(counts.sum()) * block
    if shortfall > 0:
        counts[-1] += -(-shortfall // block)
    n_blocks = int(counts.sum())
    formants = np.array([[s.f1, s.f2, s.f3, F4_REFERENCE] for s in segments])
    vowel_offsets = np.array(voice.vowel_offsets)
    for i, s in enumerate(segments):
        if s.vowel >= 0:
            formants[i, :3] *= vowel_offsets[s.vowel]
    formants = np.repeat(formants * voice.tract, counts, axis=0)
    # Smooth in log-frequency over ~35 ms: coarticulated transitions between targets.
    formants = np.exp(smooth(np.log(formants), 7))
    formants = np.minimum(formants, 0.46 * sr)
    amps = np.repeat(np.array([[s.av, s.ah, s.an] for s in segments]), counts, axis=0)
    amps = smooth(amps, 3)
    n_fric = len(FRICATION_BANDS)
    fric = np.zeros((len(segments), n_fric))
    for i, s in enumerate(segments):
        if s.fric >= 0:
            fric[i, s.fric] = s.af
    fric = smooth(np.repeat(fric, counts, axis=0), 2)

    # ---- prosody: declination, accents on stressed vowels, slow drift (semitones)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    t_block = (np.arange(n_blocks) + 0.5) * _BLOCK_SECONDS
    total_s = n_blocks * _BLOCK_SECONDS
    semitones = voice.declination * float(rng.uniform(0.5, 1.5)) * t_block / total_s
    for start, count, accent in zip(starts, counts, accented, strict=True):
        if accent:
            centre = (start + count / 2) * _BLOCK_SECONDS
            width = float(rng.uniform(0.06, 0.12))
            size = voice.f0_range * float(rng.uniform(0.3, 1.0))
            size *= 1.0 if rng.random() < 0.8 else -0.5
            semitones = semitones + size * np.exp(-0.5 * ((t_block - centre) / width) ** 2)
    drift = smooth(np.cumsum(rng.normal(0.0, 0.15, n_blocks)), 41)
    semitones = semitones + np.clip(drift - drift.mean(), -2.0, 2.0)
    f0_block = np.clip(f0_mean * 2.0 ** (semitones / 12.0), 50.0, 0.3 * sr)

    # ---- block tracks -> sample-level envelopes
    n_total = n_blocks * block
    fric_bands = np.flatnonzero(fric.max(axis=0) > 0)
    tracks = upsample(np.column_stack([f0_block, amps, fric[:, fric_bands]]), block)
    f0, av, ah, an = tracks[:, 0], tracks[:, 1], tracks[:, 2], tracks[:, 3]

    # ---- glottal source: jittered, shimmered pulse train shaped by the glottal/tilt filter
    increment = f0 / sr
    phase = np.cumsum(increment) + float(rng.random())
    cycle = np.floor(phase)
    crossings = np.flatnonzero(np.diff(cycle) > 0) + 1
    period = 1.0 / increment[crossings]
    when = crossings - (phase[crossings] - cycle[crossings]) * period
    when = when + rng.normal(0.0, voice.jitter, len(crossings)) * period
    when = np.clip(when, 0.0, n_total - 1.001)
    first = np.floor(when).astype(np.int64)
    frac = when - first
    height = np.exp(rng.normal(0.0, voice.shimmer, len(crossings)))
    pulses = np.bincount(first, height * (1.0 - frac), minlength=n_total + 1)
    pulses += np.bincount(first + 1, height * frac, minlength=n_total + 1)
    pulses = pulses[:n_total]
    pole = math.exp(-2.0 * math.pi * voice.glottal * voice.f0 / sr)
    glottal_a = np.convolve(np.convolve([1.0, -pole], [1.0, -pole]), [1.0, -voice.tilt])
    # (1 - z^-1): lip radiation differentiates the glottal flow.
    glottal = scipy.signal.lfilter([1.0, -1.0], glottal_a, pulses)
    glottal /= np.sqrt(np.mean(glottal**2)) + 1e-12

    # Aspiration noise is pitch-synchronous in real voices; a parabola in the cycle phase is a
    # cheap periodic gate (1 at each pulse, 0 mid-cycle).
    gate = (2.0 * (phase - cycle) - 1.0) ** 2
    noise = rng.standard_normal(n_total)
    source = av * glottal + (ah + voice.breath * av * gate) * noise

    # ---- vocal tract: time-varying cascade of F1-F4 as one 8th-order all-pole filter
    bandwidths = BANDWIDTHS * bw_scale
    bandwidths = bandwidths * np.array([1.0 + 2.0 * voice.breath, 1.0, 1.0, 1.0])
    c1, c2 = resonator_a(formants, np.broadcast_to(bandwidths, formants.shape), sr)
    poly = np.ones((n_blocks, 1))
    for j in range(formants.shape[1]):
        nxt = np.zeros((n_blocks, poly.shape[1] + 2))
        nxt[:, :-2] += poly
        nxt[:, 1:-1] += poly * c1[:, j : j + 1]
        nxt[:, 2:] += poly * c2[:, j : j + 1]
        poly = nxt
    speech = time_varying_allpole(source, poly, block)

    # Parallel nasal murmur (nasal consonants + the voice's habitual nasality).
    n1, n2 = resonator_a(np.array(voice.nasal_freq * voice.tract), np.array(100.0), sr)
    nasal_a = np.array([1.0, float(n1), float(n2)])
    speech += scipy.signal.lfilter([nasal_a.sum()], nasal_a, (an + voice.nasality * av) * glottal)
    extra_freq = min(voice.extra_freq, 0.42 * sr)
    b, a = peaking_ba(extra_freq, voice.extra_gain_db, voice.extra_q, sr)
    speech = scipy.signal.lfilter(b, a, speech)

    # ---- frication / bursts bypass the cascade, levelled against the voiced speech
    voiced = av > 0.5
    reference = np.sqrt(np.mean(speech[voiced] ** 2)) if voiced.any() else 1.0
    for column, band in enumerate(fric_bands):
        envelope = tracks[:, 4 + column]
        sos, rms_gain = _frication_filter(int(band), voice.tract, sr)
        # Noise is only filtered where the band is active: frication covers a small part of an
        # utterance, and the envelope ramps from zero over the filter's onset transient.
        active = np.concatenate([[0], (envelope > 0).astype(np.int8), [0]])
        edges = np.flatnonzero(np.diff(active))
        for start, stop in zip(edges[::2], edges[1::2], strict=True):
            hiss = scipy.signal.sosfilt(sos, rng.standard_normal(stop - start))
            speech[start:stop] += (reference / rms_gain) * envelope[start:stop] * hiss

    # ---- session channel: faint noise floor + gentle EQ
    session_sos, snr_db = _session_channel(
        seed, split, speaker_index, utterance_index % NUM_SESSIONS, sr
    )
    speech_rms = np.sqrt(np.mean(speech**2))
    speech += rng.standard_normal(n_total) * speech_rms * 10.0 ** (-snr_db / 20.0)
    speech = scipy.signal.sosfilt(session_sos, speech)

    # ---- trim, fade, level, quantise to 16-bit values
    out = speech[:num_samples]
    fade = min(round(0.01 * sr), num_samples // 4)
    ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(fade) + 0.5) / fade)
    out[:fade] *= ramp
    out[num_samples - fade :] *= ramp[::-1]
    out *= 10.0 ** (level_db / 20.0) / (np.sqrt(np.mean(out**2)) + 1e-12)
    peak = np.max(np.abs(out))
    if peak > _PEAK_LIMIT:
        out *= _PEAK_LIMIT / peak
    pcm = np.round(out * PCM_SCALE).astype(np.int16)
    return pcm.astype(np.float32) / np.float32(PCM_SCALE)
