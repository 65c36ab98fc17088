#!/usr/bin/env python3
"""Stage 2 - average each fingerprint's enrollment embeddings (plain arithmetic mean) into <output_dir>/<system>_fingerprint_avg_emb.csv."""
import sys

from sourcetrace.cli import run_stage
from sourcetrace.stages import average_fingerprints

if __name__ == "__main__":
    sys.exit(run_stage(2, average_fingerprints, __doc__))
