"""Mini-STOPA: a small STOPA-like corpus of real synthetic speech and its generator."""
