#!/usr/bin/env python3
"""Stage 5 - pooled EER (%) of the known and unknown scenarios by ATK, AM and VM: <output_dir>/<system>_EERs_pooled/pooled_eer_kn.csv and pooled_eer_ukn.csv."""
import sys

from sourcetrace.cli import main

if __name__ == "__main__":
    sys.exit(main(5))
