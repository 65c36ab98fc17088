"""Print pooled EER files as a Table-4-style table, beside the paper's numbers when asked.

    python -m sourcetrace.report OUTPUT_DIR SYSTEM [SYSTEM ...] [--paper]
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

# Table 4 of the STOPA paper (pooled EER %), the authors' published CSVs
PAPER = {
    "ResNet-34_STOPA": {"known": (47.61, 47.61, 47.81), "unknown": (49.55, 50.32, 49.14)},
    "AASIST_CM": {"known": (39.15, 39.15, 39.68), "unknown": (35.34, 38.69, 37.10)},
    "AASIST_STOPA": {"known": (47.05, 47.05, 45.25), "unknown": (47.75, 49.37, 48.68)},
}
ROWS = ("ATK", "AcousticModel", "VocoderModel")


def read_pooled(path: Path) -> tuple[float, ...]:
    with open(path, newline="") as handle:
        values = {row[0]: float(row[1]) for row in list(csv.reader(handle))[1:]}
    return tuple(values[name] for name in ROWS)


def table(output_dir: Path, systems: list[str], paper: bool = False) -> str:
    lines = [f"{'pooled EER (%)':24s}{'known ATK':>10s}{'AM':>7s}{'VM':>7s}{'unknown ATK':>13s}{'AM':>7s}{'VM':>7s}"]

    def row(label: str, known: tuple, unknown: tuple) -> str:
        return f"{label:24s}{known[0]:10.2f}{known[1]:7.2f}{known[2]:7.2f}{unknown[0]:13.2f}{unknown[1]:7.2f}{unknown[2]:7.2f}"

    for system in systems:
        folder = Path(output_dir) / f"{system}_EERs_pooled"
        lines.append(row(system, read_pooled(folder / "pooled_eer_kn.csv"), read_pooled(folder / "pooled_eer_ukn.csv")))
        if paper and system in PAPER:
            lines.append(row(f"  paper (STOPA)", PAPER[system]["known"], PAPER[system]["unknown"]))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output_dir", type=Path)
    parser.add_argument("systems", nargs="+")
    parser.add_argument("--paper", action="store_true", help="also print the paper's Table 4 numbers")
    args = parser.parse_args()
    print(table(args.output_dir, args.systems, args.paper))


if __name__ == "__main__":
    main()
