"""The corpus design: the attack table and the plan of every utterance and protocol.

Pure Python with no audio dependencies, so the plan (and therefore every protocol file) is a
function of the seed and the sizes alone, whatever the engines do.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from mini_stopa.sentences import make_sentences

# Acoustic models ("AM"): name -> (architecture family, speakers/voices it offers).
ACOUSTIC_MODELS: dict[str, tuple[str, tuple[str, ...]]] = {
    "espeak-ng-formant": ("formant", ("espeak_m1", "espeak_m3", "espeak_f2", "espeak_f4")),
    "espeak-ng-klatt": ("formant", ("klatt_1", "klatt_2", "klatt_4", "klatt_6")),
    "flite-kal-diphone": ("diphone", ("flite_kal16",)),
    "festival-kal-lpc-diphone": ("diphone", ("festival_kal",)),
    "flite-clustergen": ("statistical-parametric", ("flite_slt", "flite_rms", "flite_awb")),
    "festival-hts": ("statistical-parametric", ("hts_slt", "hts_slt_low")),
    "hibari": ("neural", ("hibari_heart",)),
}

# Vocoders ("VM"): name -> architecture family.
VOCODERS: dict[str, str] = {
    "world": "spectral-ola",
    "istft": "spectral-ola",
    "mlsa": "source-filter",
    "lpc": "source-filter",
    "griffin-lim": "phase-reconstruction",
    "harmonic-noise": "sinusoidal",
    "klatt": "formant-synthesis",
}

# End-to-end "vocoders": the front-end's own waveform generator, used as it is (no WORLD
# analysis and resynthesis), so each can follow only its own AM. "klatt" is the cascade/parallel
# Klatt formant synthesiser that espeak-ng's Klatt variants speak through.
END_TO_END: dict[str, str] = {"klatt": "espeak-ng-klatt"}  # vocoder -> its acoustic model


@dataclass(frozen=True)
class Attack:
    atk: str
    am: str
    vm: str
    role: str  # train | known | unknown
    note: str

    @property
    def am_archit(self) -> str:
        return ACOUSTIC_MODELS[self.am][0]

    @property
    def vm_archit(self) -> str:
        return VOCODERS[self.vm]


ATTACKS: tuple[Attack, ...] = (
    Attack("AA01", "espeak-ng-formant", "world", "known", "enrolled"),
    Attack("AA02", "espeak-ng-formant", "lpc", "unknown", "known AM (AA01) + known VM (AA05), new pairing"),
    Attack("AA03", "flite-kal-diphone", "mlsa", "known", "enrolled"),
    Attack("AA04", "festival-kal-lpc-diphone", "world", "unknown",
           "unseen AM (AA08's; seen family: diphone) + known VM (AA01)"),
    Attack("AA05", "flite-clustergen", "lpc", "known", "enrolled"),
    Attack("AA06", "hibari", "istft", "unknown", "known AM (AA07) + unseen VM (seen family: spectral-ola)"),
    Attack("AA07", "hibari", "griffin-lim", "known", "enrolled"),
    Attack("AA08", "festival-kal-lpc-diphone", "istft", "unknown", "unseen AM + unseen VM (both of seen families)"),
    Attack("AA09", "espeak-ng-klatt", "klatt", "unknown",
           "end-to-end: unseen AM + unseen VM of an unseen family (the engine's own Klatt synthesiser)"),
    Attack("AA10", "festival-hts", "mlsa", "known", "enrolled; shares its VM with AA03 (HTS-style MLSA)"),
    Attack("AA11", "espeak-ng-klatt", "mlsa", "train", "training"),
    Attack("AA12", "flite-clustergen", "world", "train", "training"),
    Attack("AA13", "hibari", "harmonic-noise", "train", "training"),
    Attack("AA14", "festival-hts", "lpc", "train", "training"),
    Attack("AA15", "espeak-ng-formant", "griffin-lim", "train", "training"),
    Attack("AA16", "flite-kal-diphone", "harmonic-noise", "train", "training"),
)
for _a in ATTACKS:
    if END_TO_END.get(_a.vm, _a.am) != _a.am:
        raise ValueError(f"{_a.atk}: the end-to-end vocoder {_a.vm} only follows {END_TO_END[_a.vm]}")
ATTACK_BY_ID = {a.atk: a for a in ATTACKS}
KNOWN = [a.atk for a in ATTACKS if a.role == "known"]
EVAL = [a.atk for a in ATTACKS if a.role in ("known", "unknown")]
TRAIN = [a.atk for a in ATTACKS if a.role == "train"]

SPLIT_LETTER = {"dev": "D", "eval": "E", "train": "T"}
STRETCHES = (0.9, 1.0, 1.1)  # duration stretch factors drawn per utterance


@dataclass(frozen=True)
class Sizes:
    trials_per_attack: int = 14  # one per trial sentence
    co_sizes: tuple[int, ...] = (1, 5, 10)
    nc_sizes: tuple[int, ...] = (1, 5, 10)  # plus "all"
    nc_all: int = 16  # enrollment utterances without content overlap per known attack
    nc_pool: int = 40  # sentences reserved for no-overlap enrollment
    train_per_attack: int = 30
    train_pool: int = 60


@dataclass(frozen=True)
class Utterance:
    file_name: str
    atk: str
    split: str  # dev | eval | train
    speaker: str
    text_id: str
    text: str
    stretch: float

    @property
    def attack(self) -> Attack:
        return ATTACK_BY_ID[self.atk]


@dataclass
class Plan:
    utterances: list[Utterance]
    enrollment: dict[str, list[Utterance]]  # fingerprint id (e.g. AA01-co-5) -> utterances
    trials: dict[str, list[Utterance]]  # condition (co | nc) -> trial utterances
    train: list[Utterance]


def _speakers(rng: random.Random, am: str, n: int) -> list[str]:
    """`n` speakers of `am`, balanced (each voice used n/len(voices) times, rounded)."""
    voices = list(ACOUSTIC_MODELS[am][1])
    out = [voices[i % len(voices)] for i in range(n)]
    rng.shuffle(out)
    return out


def make_plan(seed: int, sizes: Sizes = Sizes()) -> Plan:
    """Every utterance and protocol of the corpus, deterministic in `seed` and `sizes`."""
    if max(sizes.co_sizes) > sizes.trials_per_attack:
        raise ValueError("co sizes cannot exceed the number of trial sentences (trials_per_attack)")
    if max(sizes.nc_sizes) > sizes.nc_all or sizes.nc_all > sizes.nc_pool:
        raise ValueError("need nc sizes <= nc_all <= nc_pool")
    rng = random.Random(seed)
    n_trial, n_nc, n_tr = sizes.trials_per_attack, sizes.nc_pool, sizes.train_pool
    texts = make_sentences(n_trial + n_nc + n_tr, seed)
    ids = [f"S{i + 1:03d}" for i in range(len(texts))]
    trial_pool = list(range(n_trial))
    nc_pool = list(range(n_trial, n_trial + n_nc))
    train_pool = list(range(n_trial + n_nc, len(texts)))

    counters: dict[tuple[str, str], int] = {}
    utterances: list[Utterance] = []

    def new(atk: str, split: str, speaker: str, text_index: int) -> Utterance:
        key = (atk, split)
        counters[key] = counters.get(key, 0) + 1
        u = Utterance(
            file_name=f"{atk}_{SPLIT_LETTER[split]}_{counters[key]:04d}.flac",
            atk=atk, split=split, speaker=speaker, text_id=ids[text_index],
            text=texts[text_index], stretch=rng.choice(STRETCHES),
        )
        utterances.append(u)
        return u

    trial_utts: list[Utterance] = []
    for atk in EVAL:
        order = list(trial_pool)
        rng.shuffle(order)
        spk = _speakers(rng, ATTACK_BY_ID[atk].am, len(order))
        trial_utts += [new(atk, "eval", s, t) for s, t in zip(spk, order)]

    enrollment: dict[str, list[Utterance]] = {}
    for atk in KNOWN:
        am = ATTACK_BY_ID[atk].am
        co_texts = rng.sample(trial_pool, max(sizes.co_sizes))
        co = [new(atk, "dev", s, t) for s, t in zip(_speakers(rng, am, len(co_texts)), co_texts)]
        nc_texts = rng.sample(nc_pool, sizes.nc_all)
        nc = [new(atk, "dev", s, t) for s, t in zip(_speakers(rng, am, len(nc_texts)), nc_texts)]
        # Smaller enrollment sets are prefixes of larger ones, as STOPA reuses utterances.
        for n in sizes.co_sizes:
            enrollment[f"{atk}-co-{n}"] = co[:n]
        for n in sizes.nc_sizes:
            enrollment[f"{atk}-nc-{n}"] = nc[:n]
        enrollment[f"{atk}-nc-all"] = nc

    train: list[Utterance] = []
    for atk in TRAIN:
        texts_i = rng.sample(train_pool, sizes.train_per_attack)
        spk = _speakers(rng, ATTACK_BY_ID[atk].am, len(texts_i))
        train += [new(atk, "train", s, t) for s, t in zip(spk, texts_i)]

    return Plan(utterances, enrollment, {"co": trial_utts, "nc": trial_utts}, train)


def trial_labels(fingerprint_atk: str, trial_atk: str) -> tuple[bool, bool, bool, bool, bool]:
    """(IsTargetATK, IsTargetAcousticModel, IsTargetVocoderModel, IsTargetAmArchit, IsTargetVmArchit)."""
    f, t = ATTACK_BY_ID[fingerprint_atk], ATTACK_BY_ID[trial_atk]
    return (f.atk == t.atk, f.am == t.am, f.vm == t.vm, f.am_archit == t.am_archit, f.vm_archit == t.vm_archit)
