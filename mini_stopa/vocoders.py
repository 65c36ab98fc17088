"""Shared feature analysis and the vocoders (VM) that resynthesise from it, all at 16 kHz.

Every front-end waveform is analysed once with WORLD (DIO + StoneMask f0, CheapTrick spectral
envelope, D4C aperiodicity; 5 ms frames). Each vocoder turns those features back into a
waveform in its own way, so the same acoustic-model output carries a different vocoder
fingerprint per attack. Griffin-Lim is the exception that a neural TTS stack would also make:
it inverts an 80-band log-mel spectrogram of the front-end waveform.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pysptk
import pyworld
from pysptk.synthesis import MLSADF, Synthesizer
from scipy.linalg import solve_toeplitz
from scipy.signal import lfilter

FS = 16000
FRAME_MS = 5.0
HOP = int(FS * FRAME_MS / 1000)  # 80 samples
F0_FLOOR, F0_CEIL = 60.0, 600.0


@dataclass
class Features:
    """WORLD features of one waveform, plus the waveform for mel-domain vocoders."""

    f0: np.ndarray  # (T,) Hz, 0 where unvoiced
    sp: np.ndarray  # (T, 513) power spectral envelope
    ap: np.ndarray  # (T, 513) aperiodicity in [0, 1]
    wave: np.ndarray  # (N,) float64 waveform at FS


def analyse(wave: np.ndarray) -> Features:
    x = np.ascontiguousarray(wave, dtype=np.float64)
    f0, t = pyworld.dio(x, FS, f0_floor=F0_FLOOR, f0_ceil=F0_CEIL, frame_period=FRAME_MS)
    f0 = pyworld.stonemask(x, f0, t, FS)
    sp = pyworld.cheaptrick(x, f0, t, FS, f0_floor=F0_FLOOR)
    ap = pyworld.d4c(x, f0, t, FS)
    return Features(f0, sp, ap, x)


# ---------------------------------------------------------------------------- helpers


def _stft(x: np.ndarray, n_fft: int, hop: int, win: np.ndarray) -> np.ndarray:
    """Centred STFT (reflect padding), frames along axis 0: (frames, n_fft//2+1)."""
    pad = n_fft // 2
    xp = np.pad(x, pad, mode="reflect")
    n = 1 + (len(xp) - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(n)[:, None]
    w = np.zeros(n_fft)
    off = (n_fft - len(win)) // 2
    w[off:off + len(win)] = win
    return np.fft.rfft(xp[idx] * w, axis=1)


def _istft(spec: np.ndarray, n_fft: int, hop: int, win: np.ndarray, length: int) -> np.ndarray:
    """Inverse of `_stft` by weighted overlap-add."""
    w = np.zeros(n_fft)
    off = (n_fft - len(win)) // 2
    w[off:off + len(win)] = win
    frames = np.fft.irfft(spec, n=n_fft, axis=1) * w
    n = len(frames)
    total = n_fft + hop * (n - 1)
    y = np.zeros(total)
    norm = np.zeros(total)
    for i in range(n):
        y[i * hop:i * hop + n_fft] += frames[i]
        norm[i * hop:i * hop + n_fft] += w * w
    y /= np.maximum(norm, 1e-8)
    pad = n_fft // 2
    out = y[pad:pad + length]
    return np.pad(out, (0, length - len(out)))


def _frame_to_sample(values: np.ndarray, n: int) -> np.ndarray:
    """Linear interpolation of per-frame values (frame i at sample i*HOP) to `n` samples."""
    return np.interp(np.arange(n), np.arange(len(values)) * HOP, values)


def _floored(sp: np.ndarray, floor_db: float = -60.0) -> np.ndarray:
    """Envelope floored at `floor_db` below each frame's peak (keeps filters numerically sane)."""
    return np.maximum(sp, sp.max(axis=1, keepdims=True) * 10 ** (floor_db / 10))


def _pulses(f0_frames: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit-power pulse train (amplitude sqrt(period)) and per-sample voicing mask."""
    f0 = _frame_to_sample(f0_frames, n)
    voiced = _frame_to_sample((f0_frames > 0).astype(float), n) > 0.5
    f0 = np.where(voiced, np.maximum(f0, F0_FLOOR), 0.0)
    phase = np.cumsum(f0 / FS)
    idx = np.nonzero(np.diff(np.floor(phase), prepend=0.0) > 0)[0]
    e = np.zeros(n)
    e[idx] = np.sqrt(FS / np.maximum(f0[idx], F0_FLOOR))
    return e, voiced


def _resample_bins(sp: np.ndarray, bins: int) -> np.ndarray:
    src = np.linspace(0, 1, sp.shape[1])
    dst = np.linspace(0, 1, bins)
    return np.stack([np.interp(dst, src, row) for row in sp])


def _match_frames(a: np.ndarray, n: int) -> np.ndarray:
    """Pad (edge) or cut a per-frame array along axis 0 to `n` frames."""
    if len(a) >= n:
        return a[:n]
    return np.concatenate([a, np.repeat(a[-1:], n - len(a), axis=0)])


# ---------------------------------------------------------------------------- vocoders


def world(f: Features, rng: np.random.Generator) -> np.ndarray:
    return pyworld.synthesize(f.f0, f.sp, f.ap, FS, FRAME_MS)


def mlsa(f: Features, rng: np.random.Generator, order: int = 24, alpha: float = 0.42) -> np.ndarray:
    """Mel-cepstrum (order 24) + binary pulse/noise excitation through an MLSA filter (HTS style)."""
    mc = pysptk.sp2mc(_floored(f.sp), order=order, alpha=alpha)
    b = pysptk.mc2b(mc, alpha)
    n = len(f.f0) * HOP
    # Own excitation rather than pysptk.excite, whose noise ignores its seed argument.
    pulses, voiced = _pulses(f.f0, n)
    source = np.where(voiced, pulses, rng.standard_normal(n))
    synth = Synthesizer(MLSADF(order=order, alpha=alpha), HOP)
    return synth.synthesis(source, b)


def lpc(f: Features, rng: np.random.Generator, order: int = 18) -> np.ndarray:
    """All-pole (order 18) filter per frame from the envelope's autocorrelation; mixed excitation."""
    n = len(f.f0) * HOP
    pulses, voiced = _pulses(f.f0, n)
    noise = rng.standard_normal(n)
    # Band-averaged aperiodicity below 4 kHz as the noise share of voiced frames.
    ap_low = np.clip(f.ap[:, : f.ap.shape[1] // 2].mean(axis=1), 0.0, 1.0)
    mix = _frame_to_sample(ap_low, n)
    exc = np.where(voiced, np.sqrt(1 - mix) * pulses + np.sqrt(mix) * noise, noise)
    r = np.fft.irfft(_floored(f.sp), axis=1)[:, : order + 1]
    y = np.zeros(n)
    zi = np.zeros(order)
    for i in range(len(f.f0)):
        ri = r[i].copy()
        ri[0] *= 1.0 + 1e-6  # white-noise correction keeps the Toeplitz system well conditioned
        a = solve_toeplitz(ri[:order], ri[1:order + 1])
        gain = np.sqrt(max(ri[0] - a @ ri[1:order + 1], 1e-12))
        seg = slice(i * HOP, (i + 1) * HOP)
        y[seg], zi = lfilter([gain], np.concatenate([[1.0], -a]), exc[seg], zi=zi)
    return y


def _mel_filterbank(n_mels: int, n_fft: int, fmin: float = 0.0, fmax: float = FS / 2) -> np.ndarray:
    """HTK mel triangles, (n_mels, n_fft//2+1), area-normalised (Slaney style)."""
    def hz2mel(h):
        return 2595.0 * np.log10(1.0 + h / 700.0)

    def mel2hz(m):
        return 700.0 * (10 ** (m / 2595.0) - 1.0)

    freqs = np.linspace(0, FS / 2, n_fft // 2 + 1)
    edges = mel2hz(np.linspace(hz2mel(fmin), hz2mel(fmax), n_mels + 2))
    fb = np.zeros((n_mels, len(freqs)))
    for m in range(n_mels):
        lo, c, hi = edges[m], edges[m + 1], edges[m + 2]
        fb[m] = np.maximum(0, np.minimum((freqs - lo) / (c - lo), (hi - freqs) / (hi - c)))
        fb[m] *= 2.0 / (hi - lo)
    return fb


_MEL = {"n_fft": 1024, "hop": 200, "win": 800, "n_mels": 80, "iters": 32}


def griffin_lim(f: Features, rng: np.random.Generator) -> np.ndarray:
    """80-band log-mel of the front-end waveform, pseudo-inverse to linear, 32 Griffin-Lim steps."""
    p = _MEL
    win = np.hanning(p["win"] + 1)[:-1]
    fb = _mel_filterbank(p["n_mels"], p["n_fft"])
    mag = np.abs(_stft(f.wave, p["n_fft"], p["hop"], win))
    logmel = np.log(np.maximum(mag @ fb.T, 1e-5))  # the acoustic-model feature
    target = np.maximum(np.exp(logmel) @ np.linalg.pinv(fb).T, 0.0)
    n = len(f.wave)
    phase = np.exp(2j * np.pi * rng.random(target.shape))
    for _ in range(p["iters"]):
        y = _istft(target * phase, p["n_fft"], p["hop"], win, n)
        spec = _stft(y, p["n_fft"], p["hop"], win)
        phase = np.exp(1j * np.angle(spec))
    return _istft(target * phase, p["n_fft"], p["hop"], win, n)


def _voicing_cutoff(f: Features) -> np.ndarray:
    """Per-frame maximum voiced frequency (Hz): first band above 500 Hz where aperiodicity > 0.5."""
    freqs = np.linspace(0, FS / 2, f.ap.shape[1])
    above = (f.ap > 0.5) & (freqs[None, :] > 500.0)
    first = np.where(above.any(axis=1), above.argmax(axis=1), f.ap.shape[1] - 1)
    cut = np.clip(freqs[first], 1000.0, 7000.0)
    return np.where(f.f0 > 0, cut, 0.0)


def _shaped_noise(f: Features, rng: np.random.Generator, gain: np.ndarray, n: int) -> np.ndarray:
    """White noise filtered per 5 ms frame by `gain` (T, 257) in a 512-point STFT."""
    n_fft = 512
    win = np.hanning(n_fft + 1)[:-1]
    spec = _stft(rng.standard_normal(n), n_fft, HOP, win)
    return _istft(spec * _match_frames(gain, len(spec)), n_fft, HOP, win, n)


def harmonic_noise(f: Features, rng: np.random.Generator) -> np.ndarray:
    """Zero-phase harmonics below a per-frame voicing cut-off plus envelope-shaped noise above it."""
    n = len(f.f0) * HOP
    cutoff = _voicing_cutoff(f)
    f0 = _frame_to_sample(np.where(f.f0 > 0, f.f0, 0.0), n)
    voiced = _frame_to_sample((f.f0 > 0).astype(float), n) > 0.5
    f0 = np.where(voiced, np.maximum(f0, F0_FLOOR), 0.0)
    phase = 2 * np.pi * np.cumsum(f0 / FS)
    bins = f.sp.shape[1]
    frame_t = np.arange(len(f.f0)) * HOP
    sample_t = np.arange(n)
    y = np.zeros(n)
    f0_frames = np.maximum(f.f0, F0_FLOOR)
    for k in range(1, int(FS / 2 / F0_FLOOR) + 1):
        fk = k * f0_frames
        on = (f.f0 > 0) & (fk < cutoff)
        if not on.any():
            break
        b = np.clip(np.round(fk / (FS / 2) * (bins - 1)).astype(int), 0, bins - 1)
        amp = np.where(on, 2.0 * np.sqrt(f.sp[np.arange(len(b)), b] * f0_frames / FS), 0.0)
        y += np.interp(sample_t, frame_t, amp) * np.cos(k * phase)
    freqs = np.linspace(0, FS / 2, 257)
    env = np.sqrt(_resample_bins(f.sp, 257))
    mask = (freqs[None, :] >= cutoff[:, None]).astype(float)
    return y + _shaped_noise(f, rng, env * mask, n)


def istft(f: Features, rng: np.random.Generator) -> np.ndarray:
    """Pulse-train and noise spectra multiplied by the envelope, one inverse STFT (512, hop 5 ms)."""
    n = len(f.f0) * HOP
    n_fft = 512
    win = np.hanning(n_fft + 1)[:-1]
    pulses, voiced = _pulses(f.f0, n)
    env = np.sqrt(_resample_bins(f.sp, 257))
    ap = np.clip(_resample_bins(f.ap, 257), 0.0, 1.0)
    p_spec = _stft(pulses, n_fft, HOP, win)
    n_spec = _stft(rng.standard_normal(n), n_fft, HOP, win)
    m = len(p_spec)
    env, ap = _match_frames(env, m), _match_frames(ap, m)
    # WORLD's aperiodicity is a power ratio (its own synthesis splits sp into sp*(1-ap) and sp*ap).
    spec = p_spec * env * np.sqrt(1 - ap) + n_spec * env * np.sqrt(ap)
    return _istft(spec, n_fft, HOP, win, n)


VOCODER_FUNCS = {
    "world": world,
    "mlsa": mlsa,
    "lpc": lpc,
    "griffin-lim": griffin_lim,
    "harmonic-noise": harmonic_noise,
    "istft": istft,
}
