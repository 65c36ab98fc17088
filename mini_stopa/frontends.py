"""Offline text-to-speech front-ends (the corpus's acoustic models, AM).

Each front-end turns (text, speaker, duration stretch) into a float waveform at 16 kHz.
The command-line engines (espeak-ng, flite, festival) come from Debian packages; hibari from a
PyPI wheel that ships its voice model. Nothing is downloaded at run time.
"""
from __future__ import annotations

import subprocess
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

FS = 16000

# speaker id -> engine-specific voice argument
ESPEAK_VOICES = {
    "espeak_m1": "en-us+m1", "espeak_m3": "en-us+m3", "espeak_f2": "en-us+f2", "espeak_f4": "en-us+f4",
    "klatt_1": "en-us+klatt", "klatt_2": "en-us+klatt2", "klatt_4": "en-us+klatt4", "klatt_6": "en-us+klatt6",
}
FLITE_VOICES = {"flite_kal16": "kal16", "flite_slt": "slt", "flite_rms": "rms", "flite_awb": "awb"}
# festival voice function and extra hts_engine parameters (half-tone f0 shift)
FESTIVAL_VOICES = {
    "festival_kal": ("voice_kal_diphone", None),
    "hts_slt": ("voice_cmu_us_slt_arctic_hts", 0.0),
    "hts_slt_low": ("voice_cmu_us_slt_arctic_hts", -3.0),
}
ESPEAK_WPM = 175  # espeak-ng's default speaking rate


def to_fs(x: np.ndarray, sr: int) -> np.ndarray:
    """Mono float64 at 16 kHz (polyphase resampling)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim > 1:
        x = x.mean(axis=1)
    if sr == FS:
        return x
    r = Fraction(FS, sr)
    return resample_poly(x, r.numerator, r.denominator)


def _run(cmd: list[str]) -> None:
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({res.returncode}): {res.stderr.strip()}\n"
                           f"Is the Debian package installed? See mini_stopa/README.md.")


def _read(path: Path) -> np.ndarray:
    x, sr = sf.read(str(path), dtype="float64")
    return to_fs(x, sr)


class FrontEnds:
    """Synthesises with any of the acoustic models; loads the Python models lazily."""

    def __init__(self) -> None:
        self._hibari = None
        self._tmp = tempfile.TemporaryDirectory(prefix="mini_stopa_")
        self.tmp = Path(self._tmp.name)

    def synth(self, am: str, text: str, speaker: str, stretch: float, seed: int) -> np.ndarray:
        fn = {
            "espeak-ng-formant": self._espeak, "espeak-ng-klatt": self._espeak,
            "flite-kal-diphone": self._flite, "flite-clustergen": self._flite,
            "festival-kal-lpc-diphone": self._festival, "festival-hts": self._festival,
            "hibari": self._hibari_synth,
        }[am]
        return fn(text, speaker, stretch, seed)

    def _espeak(self, text, speaker, stretch, seed):
        out = self.tmp / "espeak.wav"
        _run(["espeak-ng", "-v", ESPEAK_VOICES[speaker], "-s", str(round(ESPEAK_WPM / stretch)),
              "-w", str(out), text])
        return _read(out)

    def _flite(self, text, speaker, stretch, seed):
        out = self.tmp / "flite.wav"
        _run(["flite", "-voice", FLITE_VOICES[speaker], "--setf", f"duration_stretch={stretch}",
              "-t", text, "-o", str(out)])
        return _read(out)

    def _festival(self, text, speaker, stretch, seed):
        voice, halftones = FESTIVAL_VOICES[speaker]
        txt, out = self.tmp / "festival.txt", self.tmp / "festival.wav"
        txt.write_text(text + "\n", encoding="utf-8")
        if halftones is None:  # diphone voice: festival's own duration stretch
            setup = f"(begin ({voice}) (Parameter.set 'Duration_Stretch {stretch}))"
        else:  # HTS voice: hts_engine's speed rate (-r) and half-tone shift (-fm)
            setup = (f"(begin ({voice}) (set! hts_engine_params (append hts_engine_params "
                     f"(list (list \"-r\" {1.0 / stretch:.4f}) (list \"-fm\" {halftones})))))")
        _run(["text2wave", "-eval", setup, str(txt), "-o", str(out)])
        return _read(out)

    def _hibari_synth(self, text, speaker, stretch, seed):
        if self._hibari is None:
            from hibari import Hibari
            self._hibari = Hibari(voice="heart")  # the voice bundled in the wheel
        x = self._hibari(text, speed=1.0 / stretch, seed=seed)
        return to_fs(x, self._hibari.sample_rate)
