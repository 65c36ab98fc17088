#!/usr/bin/env python3
"""Stage 4 - cosine score of every trial row of the known attacks' fingerprints against its fingerprint: <output_dir>/<system>_evaluation.csv (protocol columns as read + CosScore)."""
import sys

from sourcetrace.cli import main

if __name__ == "__main__":
    sys.exit(main(4))
