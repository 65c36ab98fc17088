#!/usr/bin/env python3
"""Stage 3 - embeddings of every distinct trial utterance in the trial protocols (trial_protocol_dir), each once: <output_dir>/<system>_protocol_trials.npy with .ids.tsv."""
import sys

from sourcetrace.cli import main

if __name__ == "__main__":
    sys.exit(main(3))
