#!/usr/bin/env python3
"""Stage 0 - train the system's embedding extractor (model_config, the train section) on train_protocol: <output_dir>/<system>_training/ with best.pth (point model_path at it), last.pt and history.csv. Under torchrun it trains data-parallel."""
import sys

from sourcetrace.cli import main

if __name__ == "__main__":
    sys.exit(main(0))
