#!/usr/bin/env python3
"""Stage 2 - average each fingerprint's enrollment embeddings (plain arithmetic mean) into <output_dir>/<system>_fingerprint_avg_emb.csv."""
import sys

from sourcetrace.cli import main

if __name__ == "__main__":
    sys.exit(main(2))
