#!/usr/bin/env python3
"""Stage 1 - embeddings of the enrollment utterances listed in the enrollment protocols (enroll_protocol_dir), one matrix per fingerprint: <output_dir>/<system>_embeddings/<fingerprint>.npy with <fingerprint>.ids.tsv."""
import sys

from sourcetrace.cli import main

if __name__ == "__main__":
    sys.exit(main(1))
