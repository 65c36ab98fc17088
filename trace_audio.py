#!/usr/bin/env python3
"""Which enrolled attack made each audio file, or none of them: the top fingerprints, their attack, acoustic model, vocoder and score, and the decision (an attack or `unknown`), from stages 2 and 5 (sourcetrace/trace.py)."""
import sys

from sourcetrace.trace import main

if __name__ == "__main__":
    sys.exit(main())
