"""Decoding audio to the models' input: float32 mono at 16 kHz.

libsndfile (through soundfile) decodes WAV, FLAC, OGG and the other formats it knows,
with no system packages. Multichannel audio is averaged to mono; other sample rates are
resampled with torchaudio's band-limited sinc resampler.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

SAMPLE_RATE = 16000
log = logging.getLogger(__name__)


class AudioError(Exception):
    """An audio file that cannot be used; the message names the file and the reason."""


def resampled_length(frames: int, sample_rate: int) -> int:
    """Number of samples torchaudio's resampler returns for `frames` at `sample_rate`."""
    if sample_rate == SAMPLE_RATE:
        return frames
    g = math.gcd(sample_rate, SAMPLE_RATE)
    return math.ceil(SAMPLE_RATE // g * frames / (sample_rate // g))


def probe_length(path: Path) -> int:
    """Length in samples at 16 kHz, from the file header."""
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioError(f"{path}: not a readable audio file ({exc})") from None
    return resampled_length(info.frames, info.samplerate)


def _check_wav_complete(path: Path) -> None:
    """libsndfile silently shortens a truncated WAV; compare its data chunk with the file."""
    with open(path, "rb") as handle:
        head = handle.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return
        size = Path(path).stat().st_size
        while True:
            chunk = handle.read(8)
            if len(chunk) < 8:
                return
            length = int.from_bytes(chunk[4:], "little")
            if chunk[:4] == b"data":
                if length != 0xFFFFFFFF and handle.tell() + length > size:
                    raise AudioError(f"{path}: truncated WAV (header declares {length} bytes of audio, "
                                     f"the file holds {size - handle.tell()})")
                return
            handle.seek(length + (length & 1), 1)


def decode_audio(path: Path) -> tuple[np.ndarray, int]:
    """Decode `path` to float32 mono at the file's own sample rate, checking it is usable."""
    _check_wav_complete(path)
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioError(f"{path}: not a readable audio file ({exc})") from None
    if data.shape[0] == 0:
        raise AudioError(f"{path}: no samples")
    wave = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float32)
    if not np.isfinite(wave).all():
        raise AudioError(f"{path}: contains NaN or infinite samples")
    return np.ascontiguousarray(wave), rate


def to_model_rate(wave: np.ndarray, rate: int) -> np.ndarray:
    """`wave` at `rate` resampled to 16 kHz (unchanged when already there)."""
    if rate == SAMPLE_RATE:
        return wave
    return AF.resample(torch.from_numpy(wave), rate, SAMPLE_RATE).numpy()


def load_audio(path: Path) -> tuple[np.ndarray, int]:
    """Decode `path` to float32 mono at 16 kHz; also return the file's own sample rate."""
    wave, rate = decode_audio(path)
    return to_model_rate(wave, rate), rate


# file name suffix -> the libsndfile format that reads it (headerless RAW and MATLAB files are
# left out: neither is recognisable as audio by its name)
_SUFFIXES = {".wav": "WAV", ".wave": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".oga": "OGG", ".opus": "OGG",
             ".mp3": "MP3", ".aif": "AIFF", ".aiff": "AIFF", ".aifc": "AIFF", ".au": "AU", ".snd": "AU",
             ".caf": "CAF", ".w64": "W64", ".rf64": "RF64", ".sph": "NIST", ".nist": "NIST", ".sf": "IRCAM",
             ".voc": "VOC", ".htk": "HTK", ".iff": "SVX", ".svx": "SVX", ".paf": "PAF", ".pvf": "PVF",
             ".sd2": "SD2", ".sds": "SDS", ".xi": "XI", ".avr": "AVR", ".wve": "WVE"}


def audio_suffixes() -> frozenset[str]:
    """File name suffixes (lower case, with the dot) of the formats this libsndfile reads."""
    formats = sf.available_formats()
    return frozenset(s for s, f in _SUFFIXES.items() if f in formats)
