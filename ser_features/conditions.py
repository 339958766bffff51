"""Recording conditions, simulated: noise, babble, rooms, telephone lines, codecs, clipping, level.

One registry (:data:`CONDITIONS`) that the robustness benchmark, the tests and the training-side
augmentation share. A condition turns mono float samples at one rate into what a microphone,
a room, a line or a codec would have delivered: ``simulate(name, samples, rate, seed=...)``
returns ``(samples, rate)``; the rate changes where the channel changes it (8 kHz telephone).
Every random choice comes from a generator seeded by ``seed``, so a condition is deterministic
for a seed.

Signal-to-noise ratios are against the **active speech level**: the mean power of the 20 ms
frames within 30 dB of the loudest one (a simple form of ITU-T P.56), so pauses and leading
silence do not make a clip look noisier than it is.

Examples
--------
>>> import numpy as np
>>> rate = 16000
>>> tone = (0.3 * np.sin(np.arange(rate) / 5)).astype("float32")
>>> noisy, noisy_rate = simulate("pink_noise_20db", tone, rate, seed=1)
>>> round(snr_db(tone, noisy - tone, rate)), noisy_rate
(20, 16000)
>>> np.array_equal(noisy, simulate("pink_noise_20db", tone, rate, seed=1)[0])
True
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import soundfile as sf

from ser_features.audio import resample
from ser_features.speech_activity import active_level


@dataclass(frozen=True)
class Context:
    """What a condition may need beyond the clip: ``babble_pool``, recordings of *other*
    speakers (mono, at the clip's rate) that babble is mixed from. Callers must take them from
    the training side only; a babble condition without a pool raises ``ValueError``."""

    babble_pool: Sequence[np.ndarray] = field(default_factory=tuple)


@dataclass(frozen=True)
class Condition:
    """A named channel: ``apply(samples, rate, rng, context)`` returns ``(samples, rate)``."""

    name: str
    description: str
    apply: Callable[[np.ndarray, int, np.random.Generator, Context], tuple[np.ndarray, int]]


def snr_db(speech: np.ndarray, noise: np.ndarray, rate: int) -> float:
    """The ratio of the active speech level of ``speech`` to the mean power of ``noise``."""
    noise_power = float(np.mean(np.square(noise, dtype=np.float64)))
    return 10 * np.log10(active_level(speech, rate) / max(noise_power, 1e-20))


def mix_at_snr(speech: np.ndarray, noise: np.ndarray, rate: int, snr: float) -> np.ndarray:
    """``speech`` plus ``noise`` scaled so that :func:`snr_db` is ``snr``."""
    noise = noise[: len(speech)].astype(np.float64)
    power = float(np.mean(np.square(noise)))
    gain = np.sqrt(active_level(speech, rate) / max(power, 1e-20) / 10 ** (snr / 10))
    return (speech + gain * noise).astype(np.float32)


def coloured_noise(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Noise whose power falls as ``1/f**exponent``: 0 white, 1 pink, 2 brown. Unit RMS."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    frequencies = np.arange(len(spectrum), dtype=np.float64)
    frequencies[0] = 1.0
    noise = np.fft.irfft(spectrum / frequencies ** (exponent / 2), n)
    return noise / max(float(np.sqrt(np.mean(noise**2))), 1e-20)


def babble(
    n: int, rate: int, pool: Sequence[np.ndarray], rng: np.random.Generator, talkers: int = 6
) -> np.ndarray:
    """``talkers`` recordings from ``pool`` at equal level, each looped from a random offset."""
    if not pool:
        raise ValueError("babble needs a pool of other speakers' recordings (Context.babble_pool)")
    total = np.zeros(n)
    for index in rng.choice(len(pool), size=min(talkers, len(pool)), replace=False):
        voice = np.asarray(pool[index], dtype=np.float64)
        voice = voice / max(np.sqrt(active_level(voice, rate)), 1e-20)
        start = int(rng.integers(len(voice)))
        total += np.resize(np.roll(voice, -start), n)
    return total


@functools.lru_cache(maxsize=64)
def room_impulse(rt60: float, rate: int, room: int) -> np.ndarray:
    """The impulse response of shoebox room number ``room`` with reverberation time ``rt60``
    (s), from ``pyroomacoustics``'s image-source model; rooms, source and microphone are drawn
    from a generator seeded by ``room``, so the same arguments give the same response."""
    import pyroomacoustics as pra

    rng = np.random.default_rng(room)
    # the randomised image sources draw from the package's own generators: seed them too, or
    # the same room differs from one process to the next
    pra.random.seed(numpy=room, libroom=room)
    size = rng.uniform([4.0, 3.5, 2.5], [8.0, 6.5, 3.2])
    absorption, max_order = pra.inverse_sabine(rt60, size)
    shoebox = pra.ShoeBox(
        size,
        fs=rate,
        materials=pra.Material(absorption),
        max_order=min(max_order, 24),
        use_rand_ism=True,
        max_rand_disp=0.05,
    )
    margin = 0.6
    shoebox.add_source(rng.uniform(margin, size - margin))
    shoebox.add_microphone(rng.uniform(margin, size - margin))
    shoebox.compute_rir()
    response = np.asarray(shoebox.rir[0][0], dtype=np.float64)
    return response / max(float(np.max(np.abs(response))), 1e-20)


#: How many different rooms a reverberation condition draws from (rooms 0-7); the training
#: augmentation draws from other rooms (:data:`TRAINING_ROOMS`).
ROOMS = 8
TRAINING_ROOMS = range(100, 164)


def add_noise(
    samples: np.ndarray, rate: int, rng: np.random.Generator, *, exponent: float, snr: float
) -> np.ndarray:
    """``samples`` with ``1/f**exponent`` noise at ``snr`` dB SNR."""
    return mix_at_snr(samples, coloured_noise(len(samples), exponent, rng), rate, snr)


def reverberate(samples: np.ndarray, rate: int, *, rt60: float, room: int) -> np.ndarray:
    """``samples`` as heard in room number ``room`` with reverberation time ``rt60`` (s)."""
    from scipy.signal import fftconvolve

    response = room_impulse(round(rt60, 2), rate, room)
    wet = fftconvolve(samples.astype(np.float64), response)[: len(samples)]
    return _same_level(wet, samples)


def _same_level(processed: np.ndarray, original: np.ndarray) -> np.ndarray:
    """``processed`` at the RMS of ``original``, kept under full scale."""
    gain = np.sqrt(
        np.mean(np.square(original, dtype=np.float64)) / max(np.mean(processed**2), 1e-20)
    )
    out = processed * gain
    peak = float(np.max(np.abs(out))) if len(out) else 0.0
    return (out / peak * 0.99 if peak > 0.99 else out).astype(np.float32)


def codec_round_trip(samples: np.ndarray, rate: int, **write) -> tuple[np.ndarray, int]:
    """Encode with ``soundfile.write(**write)`` (format, subtype, compression) and decode."""
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(samples, -1.0, 1.0), rate, **write)
    buffer.seek(0)
    decoded, decoded_rate = sf.read(buffer, dtype="float32", always_2d=True)
    return decoded[:, 0], decoded_rate


#: Lossy codecs by name: ``soundfile.write`` arguments (about 16 and 14 kbit/s at 16 kHz).
CODECS = {
    "mp3": {
        "format": "MP3",
        "subtype": "MPEG_LAYER_III",
        "compression_level": 0.95,
        "bitrate_mode": "CONSTANT",
    },
    "opus": {"format": "OGG", "subtype": "OPUS", "compression_level": 0.95},
}
#: Telephone line codecs by name: the ``soundfile`` WAV subtype at 8 kHz.
LINE_CODECS = {"ulaw": "ULAW", "gsm": "GSM610"}


def telephone(samples: np.ndarray, rate: int, *, codec: str) -> tuple[np.ndarray, int]:
    """Telephone band (300-3400 Hz), 8 kHz, then the line's codec (``ulaw`` G.711 mu-law,
    ``gsm`` GSM 06.10)."""
    from scipy.signal import butter, sosfilt

    narrow = resample(samples.astype(np.float32), rate, 8000).astype(np.float64)
    band = butter(4, [300, 3400], btype="bandpass", fs=8000, output="sos")
    narrow = _same_level(sosfilt(band, narrow), narrow)
    return codec_round_trip(narrow, 8000, format="WAV", subtype=LINE_CODECS[codec])


def hard_clip(samples: np.ndarray, *, gain_db: float) -> np.ndarray:
    """``samples`` peak-normalised, driven ``gain_db`` past full scale and clipped."""
    peak = max(float(np.max(np.abs(samples))), 1e-20)
    return np.clip(samples / peak * 10 ** (gain_db / 20), -1.0, 1.0).astype(np.float32)


def at_level(samples: np.ndarray, rate: int, *, rms_dbfs: float) -> tuple[np.ndarray, int]:
    """``samples`` at ``rms_dbfs`` dBFS RMS, through a 16-bit file (its quantisation too)."""
    rms = max(float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))), 1e-20)
    scaled = np.clip(samples * (10 ** (rms_dbfs / 20) / rms), -1.0, 1.0)
    return codec_round_trip(scaled, rate, format="WAV", subtype="PCM_16")


def _noise(exponent: float, snr: float):
    def apply(samples, rate, rng, context):
        return add_noise(samples, rate, rng, exponent=exponent, snr=snr), rate

    return apply


def _babble(snr: float):
    def apply(samples, rate, rng, context):
        noise = babble(len(samples), rate, context.babble_pool, rng)
        return mix_at_snr(samples, noise, rate, snr), rate

    return apply


def _room(rt60: float):
    def apply(samples, rate, rng, context):
        return reverberate(samples, rate, rt60=rt60, room=int(rng.integers(ROOMS))), rate

    return apply


_NOISES = {"white": 0.0, "pink": 1.0, "brown": 2.0}
_CONDITIONS: list[Condition] = [
    Condition("clean", "as recorded", lambda s, r, rng, c: (s, r)),
    *(
        Condition(f"pink_noise_{snr}db", f"pink noise at {snr} dB SNR", _noise(1.0, snr))
        for snr in (30, 20, 10, 5)
    ),
    *(
        Condition(f"{colour}_noise_20db", f"{colour} noise at 20 dB SNR", _noise(exponent, 20))
        for colour, exponent in _NOISES.items()
        if colour != "pink"
    ),
    *(
        Condition(f"babble_{snr}db", f"six other talkers at {snr} dB SNR", _babble(snr))
        for snr in (20, 10)
    ),
    *(
        Condition(
            f"room_rt60_{rt60:.1f}s".replace(".", "_"),
            f"a simulated room, RT60 {rt60} s",
            _room(rt60),
        )
        for rt60 in (0.3, 0.6, 1.0)
    ),
    Condition(
        "telephone_ulaw",
        "telephone: 300-3400 Hz, 8 kHz, G.711 mu-law",
        lambda s, r, rng, c: telephone(s, r, codec="ulaw"),
    ),
    Condition(
        "telephone_gsm",
        "mobile telephone: 300-3400 Hz, 8 kHz, GSM 06.10",
        lambda s, r, rng, c: telephone(s, r, codec="gsm"),
    ),
    Condition(
        "mp3_16kbps",
        "MP3 at about 16 kbit/s",
        lambda s, r, rng, c: codec_round_trip(s, r, **CODECS["mp3"]),
    ),
    Condition(
        "opus_14kbps",
        "Opus at about 14 kbit/s",
        lambda s, r, rng, c: codec_round_trip(s, r, **CODECS["opus"]),
    ),
    Condition(
        "clipped_12db",
        "driven 12 dB past full scale, hard-clipped",
        lambda s, r, rng, c: (hard_clip(s, gain_db=12.0), r),
    ),
    Condition(
        "level_-50dbfs",
        "very quiet: -50 dBFS RMS, 16-bit",
        lambda s, r, rng, c: at_level(s, r, rms_dbfs=-50.0),
    ),
    Condition(
        "level_-9dbfs",
        "very loud: -9 dBFS RMS, 16-bit, peaks limited",
        lambda s, r, rng, c: at_level(s, r, rms_dbfs=-9.0),
    ),
]

CONDITIONS: dict[str, Condition] = {condition.name: condition for condition in _CONDITIONS}


def get_condition(name: str) -> Condition:
    """The registered condition called ``name``; a ``ValueError`` lists the known names."""
    try:
        return CONDITIONS[name]
    except KeyError:
        known = ", ".join(CONDITIONS)
        raise ValueError(f"unknown condition {name!r}; choose one of: {known}") from None


def simulate(
    name: str,
    samples: np.ndarray,
    rate: int,
    *,
    seed: int,
    context: Context | None = None,
) -> tuple[np.ndarray, int]:
    """``samples`` (mono float, at ``rate``) as heard through condition ``name``."""
    condition = get_condition(name)
    rng = np.random.default_rng(seed)
    out, out_rate = condition.apply(
        np.asarray(samples, dtype=np.float32), rate, rng, context or Context()
    )
    return np.ascontiguousarray(out, dtype=np.float32), out_rate


def as_wav_bytes(samples: np.ndarray, rate: int) -> bytes:
    """16-bit PCM WAV bytes of ``samples``: what a recorder or a line would hand over."""
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(samples, -1.0, 1.0), rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def _random_noise(
    samples: np.ndarray, rate: int, rng: np.random.Generator, *, min_snr: float
) -> tuple[np.ndarray, str]:
    """``samples`` with noise of a random colour (1/f^0 to 1/f^2) at ``min_snr``-30 dB SNR."""
    exponent, snr = float(rng.uniform(0.0, 2.0)), float(rng.uniform(min_snr, 30.0))
    noisy = add_noise(samples, rate, rng, exponent=exponent, snr=snr)
    return noisy, f"noise 1/f^{exponent:.1f} {snr:.0f} dB"


def training_condition(
    samples: np.ndarray, rate: int, rng: np.random.Generator
) -> tuple[np.ndarray, str]:
    """One random recording condition for a training copy, at the input's rate, and what it
    was: noise of a random colour at 5-30 dB SNR, a room (RT60 0.2-1.0 s, rooms other than the
    benchmark's), a room and noise, a telephone line, a low-rate codec, clipping, or a very
    low or high level. Babble is left out: it stays a condition the model never trained on.
    """
    choice = rng.choice(
        ["noise", "room", "room+noise", "telephone", "codec", "clipped", "level"],
        p=[0.35, 0.15, 0.1, 0.15, 0.1, 0.05, 0.1],
    )
    if choice in ("room", "room+noise"):
        rt60 = round(float(rng.uniform(0.2, 1.0)), 1)
        room = int(rng.choice(TRAINING_ROOMS))
        samples = reverberate(samples, rate, rt60=rt60, room=room)
        what = f"room RT60 {rt60} s"
        if choice == "room":
            return samples, what
    if choice in ("noise", "room+noise"):
        noisy, what = _random_noise(samples, rate, rng, min_snr=5.0)
        return noisy, ("room and " if choice != "noise" else "") + what
    if choice == "telephone":
        codec = str(rng.choice(list(LINE_CODECS)))
        narrow, narrow_rate = telephone(samples, rate, codec=codec)
        return resample(narrow, narrow_rate, rate)[: len(samples)], f"telephone {codec}"
    if choice == "codec":
        codec = str(rng.choice(list(CODECS)))
        decoded, decoded_rate = codec_round_trip(samples, rate, **CODECS[codec])
        return resample(decoded, decoded_rate, rate), codec
    if choice == "clipped":
        gain = float(rng.uniform(3.0, 15.0))
        return hard_clip(samples, gain_db=gain), f"clipped {gain:.0f} dB"
    dbfs = float(rng.uniform(-55.0, -12.0))
    return at_level(samples, rate, rms_dbfs=dbfs)[0], f"level {dbfs:.0f} dBFS"


def own_babble(samples: np.ndarray, rng: np.random.Generator, talkers: int = 6) -> np.ndarray:
    """Babble from the clip's own voice: ``talkers`` copies, half of them reversed, each
    circularly shifted at random. Speech-like in spectrum and rhythm, unintelligible, and
    made of nothing but the one clip (so a training copy never borrows another speaker)."""
    total = np.zeros(len(samples))
    for _ in range(talkers):
        voice = samples[::-1] if rng.random() < 0.5 else samples
        total += np.roll(voice.astype(np.float64), int(rng.integers(len(samples))))
    return total


def training_room_or_babble(
    samples: np.ndarray, rate: int, rng: np.random.Generator
) -> tuple[np.ndarray, str]:
    """A training copy in a room (RT60 0.3-1.2 s, rooms other than the benchmark's), under
    babble of the clip's own voice (:func:`own_babble`, 5-25 dB SNR), or both; and what it was.
    """
    choice = rng.choice(["room", "babble", "room+babble"], p=[0.35, 0.35, 0.3])
    what = []
    if choice != "babble":
        rt60 = round(float(rng.uniform(0.3, 1.2)), 1)
        samples = reverberate(samples, rate, rt60=rt60, room=int(rng.choice(TRAINING_ROOMS)))
        what.append(f"room RT60 {rt60} s")
    if choice != "room":
        snr = float(rng.uniform(5.0, 25.0))
        samples = mix_at_snr(samples, own_babble(samples, rng), rate, snr)
        what.append(f"own babble {snr:.0f} dB")
    return samples, " and ".join(what)


def training_telephone(
    samples: np.ndarray, rate: int, rng: np.random.Generator
) -> tuple[np.ndarray, str]:
    """A training copy through a telephone line (G.711 or GSM, back at the input's rate),
    half of them with noise of a random colour at 10-30 dB SNR first; and what it was."""
    what = []
    if rng.random() < 0.5:
        samples, noise = _random_noise(samples, rate, rng, min_snr=10.0)
        what.append(noise)
    codec = str(rng.choice(list(LINE_CODECS)))
    narrow, narrow_rate = telephone(samples, rate, codec=codec)
    what.append(f"telephone {codec}")
    return resample(narrow, narrow_rate, rate)[: len(samples)], " and ".join(what)
