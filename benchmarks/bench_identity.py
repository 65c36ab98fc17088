"""What a re-run of stage 3 costs after an edit, with the per-utterance embedding cache.

    python benchmarks/bench_identity.py [--config config/demo.conf]

Copies the config's corpus (Mini-STOPA by default, file times kept) into a temporary folder
and runs stage 3 (trials_embedding_extraction.py) as a user would, in a subprocess each time:

1. cold: every trial utterance extracted;
2. after a label-only edit of one trial file (an `IsTargetATK` flipped): stage 3, then stage 4;
3. after one audio file is repaired in place (rewritten: new modification time);
4. `--force` (the cache dropped): everything extracted again, for comparison.

Prints, per step, the wall time and how many utterances were extracted (the rest were reused
from the cache, as the stage's log says).
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import soundfile as sf

REPO = Path(__file__).resolve().parents[1]


def run(script: str, config: Path, *extra: str) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, str(REPO / script), "--config", str(config), "--device", "cpu", *extra],
                          capture_output=True, text=True, cwd=REPO)
    if done.returncode:
        sys.exit(f"{script} failed:\n{done.stderr}")
    return time.perf_counter() - start, done.stdout + done.stderr


def extracted(log: str, total: int) -> int:
    if "is up to date" in log:
        return 0
    reused = re.search(r"(\d+) utterance\(s\) already embedded", log)
    return total - (int(reused.group(1)) if reused else 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(REPO / "config" / "demo.conf"))
    args = parser.parse_args()
    cfg = json.loads(Path(args.config).read_text())
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        corpus, trials_dir, enroll_dir = tmp / "corpus", tmp / "trials", tmp / "enroll"
        # copy2: file times kept, so the copy is the same input
        shutil.copytree(REPO / cfg["database_path"], corpus, ignore=shutil.ignore_patterns("protocols_*"))
        shutil.copytree(REPO / cfg["trial_protocol_dir"], trials_dir)
        shutil.copytree(REPO / cfg["enroll_protocol_dir"], enroll_dir)
        cfg.update(database_path=str(corpus), trial_protocol_dir=str(trials_dir), enroll_protocol_dir=str(enroll_dir),
                   output_dir=str(tmp / "out"), model_path=str(REPO / cfg["model_path"]))
        config = tmp / "bench.conf"
        config.write_text(json.dumps(cfg))
        for script in ("fingerprint_embedding_extraction.py", "create_fingerprint_avg_emb_csv.py"):
            run(script, config)
        rows = []
        seconds, log = run("trials_embedding_extraction.py", config)
        total = int(re.search(r"(\d+) distinct trial utterance", log).group(1))
        rows.append(("cold run", seconds, extracted(log, total)))
        run("cosine_sim.py", config)

        trial_file = sorted(trials_dir.glob("*_trials.txt"))[0]
        lines = trial_file.read_text().splitlines()
        header, first = lines[0].split(), lines[1].split()
        column = header.index("IsTargetATK")
        first[column] = "False" if first[column] == "True" else "True"
        trial_file.write_text("\n".join([lines[0], " ".join(first), *lines[2:]]) + "\n")
        seconds, log = run("trials_embedding_extraction.py", config)
        rows.append(("label-only edit: stage 3", seconds, extracted(log, total)))
        seconds, _ = run("cosine_sim.py", config)
        rows.append(("label-only edit: stage 4", seconds, None))

        file_column = header.index("FileName")
        attack_column = header.index("ATK")
        audio = Path(cfg["trial_audio"].format(database_path=corpus, attack=first[attack_column],
                                                file=first[file_column]))
        wave, rate = sf.read(audio, dtype="float32")
        sf.write(audio, wave, rate)  # repaired in place: same audio, new file
        seconds, log = run("trials_embedding_extraction.py", config)
        rows.append(("one audio file repaired", seconds, extracted(log, total)))

        seconds, log = run("trials_embedding_extraction.py", config, "--force")
        rows.append(("--force (cache dropped)", seconds, extracted(log, total)))

    print(f"stage 3 on {total} trial utterances ({Path(args.config).name}, CPU)")
    print(f"{'step':30s}{'wall s':>9s}{'extracted':>11s}")
    for step, seconds, count in rows:
        print(f"{step:30s}{seconds:9.1f}{'' if count is None else count:>11}")


if __name__ == "__main__":
    main()
