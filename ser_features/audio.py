"""Loading audio: decode by content, validate, downmix, resample, trim, normalise.

Every problem with a file surfaces as :class:`~ser_features.errors.AudioError` whose message
says what is wrong in words a person understands.

Examples
--------
>>> clip = load_audio("03-01-05-01-02-01-12.flac", options=LoadOptions(sample_rate=16000))
>>> clip.samples.dtype, clip.sample_rate
(dtype('float32'), 16000)
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from ser_features.clip_source import read_span
from ser_features.errors import AudioError, undecodable_audio, unreadable_file

#: Below this RMS (about -80 dBFS) a clip is treated as silence.
SILENCE_RMS = 1e-4
#: Clips shorter than this after preprocessing carry too little speech to describe.
MIN_DURATION_S = 0.1


@dataclass(frozen=True)
class LoadOptions:
    """How a clip is brought to the canonical form every feature set sees.

    Parameters
    ----------
    sample_rate : canonical rate in Hz; every clip is resampled to it.
    trim_top_db : trim leading and trailing parts quieter than this many dB below the peak;
        ``None`` keeps the clip whole.
    normalize_dbfs : scale the clip to this RMS level (dBFS), limited so the peak stays
        below full scale; ``None`` keeps the recorded level.
    noise_floor_db : after normalisation, add a fixed white-noise floor this many dB under
        the clip's RMS (see :func:`add_noise_floor`); ``None`` adds nothing.
    trim_to_speech : cut the clip to the speech a voice activity detector finds in it (from
        the first to the last speech, 0.1 s either side; see
        :mod:`~ser_features.speech_activity`) instead of by level, and keep the detector's
        speech probabilities with the clip (see :func:`trim_to_speech` for a clip in which it
        hears none).
    """

    sample_rate: int = 16000
    trim_top_db: float | None = None
    normalize_dbfs: float | None = None
    noise_floor_db: float | None = None
    trim_to_speech: bool = False

    @property
    def untouched(self) -> LoadOptions:
        """The same rate with no trimming or levelling: the clip as recorded."""
        return LoadOptions(sample_rate=self.sample_rate)


#: The levelled form the ``*_levelled`` feature sets share: trimmed 40 dB under the peak,
#: brought to -23 dBFS, a white-noise floor 40 dB under the speech. Changing it changes
#: their output: bump their versions with it.
LEVELLED = LoadOptions(
    sample_rate=16000, trim_top_db=40.0, normalize_dbfs=-23.0, noise_floor_db=40.0
)
#: The levelled form cut to the speech a voice activity detector finds, not by level: noise,
#: babble or a room's tail before and after the speech stays out, quiet speech stays in.
SPEECH_LEVELLED = LoadOptions(
    sample_rate=16000, normalize_dbfs=-23.0, noise_floor_db=40.0, trim_to_speech=True
)


@dataclass(frozen=True)
class Clip:
    """A decoded, validated, mono clip at the canonical rate.

    ``speech`` holds the voice activity detector's speech probability per 32 ms window of
    ``samples`` when the clip was cut to its speech (``LoadOptions.trim_to_speech``).
    """

    samples: np.ndarray
    sample_rate: int
    original_sample_rate: int
    original_channels: int
    speech: np.ndarray | None = None

    @property
    def duration_s(self) -> float:
        """Duration of the (preprocessed) clip in seconds."""
        return len(self.samples) / self.sample_rate


def load_audio(
    source: str | Path | bytes,
    *,
    options: LoadOptions | None = None,
    max_duration_s: float | None = None,
    span: tuple[float, float] | None = None,
) -> Clip:
    """Decode ``source`` (a path or the bytes of a file) into a validated :class:`Clip`.

    With ``span`` (start and end in seconds) only that part of the file ``source`` is read,
    by seeking (see :func:`~ser_features.clip_source.read_span`).

    The container format is detected from the content, not the file name, so AIFF data
    behind a ``.wav`` name loads.  Raises :class:`AudioError` for empty, truncated, corrupt,
    non-finite, silent or too-short audio, and, with ``max_duration_s``, for audio whose
    header declares it longer than that (checked before any sample is decoded).
    """
    options = options or LoadOptions()
    if span is not None and not isinstance(source, bytes | bytearray):
        data, original_rate = read_span(source, *span)
    else:
        data, original_rate = _decode(source, max_duration_s=max_duration_s)
    channels = data.shape[1]
    if not np.all(np.isfinite(data)):
        raise AudioError("audio contains NaN or infinite samples: the file is damaged")
    mono = data[:, 0] if channels == 1 else data.mean(axis=1, dtype=np.float64).astype(np.float32)
    recorded = Clip(
        samples=np.ascontiguousarray(mono, dtype=np.float32),
        sample_rate=original_rate,
        original_sample_rate=original_rate,
        original_channels=channels,
    )
    return prepare(recorded, options)


def prepare(
    clip: Clip, options: LoadOptions, *, speech_probability: np.ndarray | None = None
) -> Clip:
    """Bring a clip as recorded (any rate) to the canonical form of ``options``: resample,
    trim, validate, level. :func:`load_audio` ends here; so does a simulated recording
    condition applied to the clip as recorded (``Augmentation.as_recorded``).

    ``speech_probability``, the detector's output for this clip when already computed, spares
    :func:`trim_to_speech` computing it again."""
    samples = resample(clip.samples, clip.sample_rate, options.sample_rate)
    speech = None
    if options.trim_to_speech:
        _check_content(samples, options.sample_rate)
        samples, speech = trim_to_speech(
            samples, options.sample_rate, speech_probability=speech_probability
        )
    elif options.trim_top_db is not None:
        samples = trim_silence(samples, top_db=options.trim_top_db)
    _check_content(samples, options.sample_rate)
    samples = level(samples, options)
    return Clip(
        samples=np.ascontiguousarray(samples, dtype=np.float32),
        sample_rate=options.sample_rate,
        original_sample_rate=clip.original_sample_rate,
        original_channels=clip.original_channels,
        speech=speech,
    )


def _decode(
    source: str | Path | bytes, *, max_duration_s: float | None = None
) -> tuple[np.ndarray, int]:
    """Read all frames as float32 ``(frames, channels)``, detecting the format from content."""
    if isinstance(source, bytes | bytearray):
        raw = bytes(source)
        name = "audio bytes"
    else:
        path = Path(source)
        name = path.name
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise unreadable_file(name, exc) from exc
    if not raw:
        raise AudioError(f"{name}: file is empty (0 bytes); re-copy or re-export it")
    try:
        with sf.SoundFile(io.BytesIO(raw)) as handle:
            declared_frames = handle.frames
            rate = handle.samplerate
            if max_duration_s is not None and declared_frames > max_duration_s * rate:
                raise AudioError(
                    f"audio is {declared_frames / rate:.0f} s long; the limit is "
                    f"{max_duration_s:.0f} s (split the recording or raise max_duration_s)"
                )
            data = handle.read(dtype="float32", always_2d=True)
            log = handle.extra_info
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise undecodable_audio(name, exc) from exc
    if len(data) < declared_frames or _header_claims_more_data(log):
        raise AudioError(
            f"{name}: audio is truncated (header promises more samples than the file holds); "
            "re-copy the original file"
        )
    if len(data) == 0:
        raise AudioError(f"{name}: audio has no samples")
    return data, rate


_CHUNK_SIZE_MISMATCH = re.compile(
    r"^\s*(?:data|ssnd)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.I | re.M
)


def _header_claims_more_data(decoder_log: str) -> bool:
    """True when libsndfile's log says the sample data chunk is longer than the file."""
    return any(
        int(claimed) > int(actual) for claimed, actual in _CHUNK_SIZE_MISMATCH.findall(decoder_log)
    )


def _check_content(samples: np.ndarray, sample_rate: int) -> None:
    duration = len(samples) / sample_rate
    if duration < MIN_DURATION_S:
        raise AudioError(
            f"audio is too short ({duration * 1000:.0f} ms after preprocessing; "
            f"at least {MIN_DURATION_S * 1000:.0f} ms of sound is needed)"
        )
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    if rms < SILENCE_RMS:
        raise AudioError(
            f"audio is silent (RMS {20 * np.log10(max(rms, 1e-12)):.0f} dBFS); "
            "check the recording or the input channel"
        )


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Resample mono ``samples`` with soxr's high-quality filter (no-op when rates match)."""
    if from_rate == to_rate:
        return samples
    return soxr.resample(samples, from_rate, to_rate, quality="HQ").astype(np.float32)


def trim_silence(samples: np.ndarray, *, top_db: float, frame: int = 512) -> np.ndarray:
    """Cut leading and trailing frames more than ``top_db`` below the loudest frame.

    Frames are ``frame`` samples side by side from the first sample (a last partial frame
    is dropped). Not ``librosa.effects.trim``: its frames are centred (half a frame earlier)
    and it keeps the partial tail, which moves the cut points by up to ~0.2 s on real clips
    and changes the numbers of feature sets that trim (``spectral_prosodic``, whose cached
    rows and registered models assume these).
    """
    n_frames = len(samples) // frame
    if n_frames < 2:
        return samples
    frames = samples[: n_frames * frame].reshape(n_frames, frame).astype(np.float64)
    energy_db = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-20)
    loud = np.flatnonzero(energy_db > energy_db.max() - top_db)
    return samples[loud[0] * frame : (loud[-1] + 1) * frame]


#: Speech kept on either side of the detected speech when a clip is cut to it.
SPEECH_PAD_S = 0.1


def trim_to_speech(
    samples: np.ndarray, sample_rate: int, *, speech_probability: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """``samples`` from the first to the last speech the detector finds (``SPEECH_PAD_S``
    either side, whole detector windows), and the speech probability of the windows kept.

    Where it hears no speech at all (a shout it does not know, heavy noise), the clip is
    trimmed by level as the other feature sets do (40 dB under its loudest frame) and no
    probabilities are kept: describing it is still possible, judging whether it holds enough
    speech is the caller's business (the served answer's quality facts).
    ``speech_probability`` is the detector's output for ``samples`` when already computed.
    """
    from ser_features import speech_activity
    from ser_features.speech_activity import WINDOW_S, speech_windows

    probability = speech_probability
    if probability is None:
        probability = speech_activity.speech_probability(samples, sample_rate)
    speaking = np.flatnonzero(speech_windows(probability))
    if len(speaking) == 0:
        return trim_silence(samples, top_db=40.0), None
    pad = round(SPEECH_PAD_S / WINDOW_S)
    first, last = max(0, speaking[0] - pad), min(len(probability), speaking[-1] + 1 + pad)
    window = round(WINDOW_S * sample_rate)
    return samples[first * window : last * window], probability[first:last]


def level(samples: np.ndarray, options: LoadOptions) -> np.ndarray:
    """The loudness normalisation and noise floor that ``options`` ask for, in that order."""
    if options.normalize_dbfs is not None:
        samples = normalize_loudness(samples, target_dbfs=options.normalize_dbfs)
    if options.noise_floor_db is not None:
        samples = add_noise_floor(samples, below_db=options.noise_floor_db)
    return samples


def add_noise_floor(samples: np.ndarray, *, below_db: float, seed: int = 0) -> np.ndarray:
    """Add white noise ``below_db`` dB under the RMS of ``samples``.

    Studios differ most in what lies under the speech: digital silence in one corpus, room
    noise in another. A common floor masks that difference, so descriptors of quiet frames
    (energy dynamics, spectral shape in pauses) mean the same thing whatever the recording.
    The noise is the same sequence for every clip, so a clip always gets the same features.
    """
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    noise = np.random.default_rng(seed).standard_normal(len(samples))
    return (samples + noise * rms * 10 ** (-below_db / 20)).astype(np.float32)


def normalize_loudness(samples: np.ndarray, *, target_dbfs: float = -23.0) -> np.ndarray:
    """Scale to an RMS of ``target_dbfs``, lowering the gain if the peak would clip."""
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    gain = 10 ** (target_dbfs / 20) / max(rms, 1e-12)
    peak = float(np.max(np.abs(samples))) * gain
    if peak > 0.99:
        gain *= 0.99 / peak
    return (samples * gain).astype(np.float32)
