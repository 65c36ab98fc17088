#!/usr/bin/env python3
"""Stage 3 - embeddings of every distinct trial utterance in the trial protocols (trial_protocol_dir), each once: <output_dir>/<system>_protocol_trials.npy with .ids.tsv."""
import sys

from sourcetrace.cli import run_stage
from sourcetrace.stages import extract_trials

if __name__ == "__main__":
    sys.exit(run_stage(3, extract_trials, __doc__))
