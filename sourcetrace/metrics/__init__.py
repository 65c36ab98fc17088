"""Metrics: the reference EER and pooling (`eer`), detection metrics on score blocks
(`detection`), bootstrap confidence intervals (`bootstrap`), DET points (`det`) and the
enrollment-condition groups of fingerprints (`groups`). Pure functions on arrays."""
from .eer import BLOCK, EER, LABELS, compute_eer, format_pooled_csv, pooled_eers, scenario_masks

__all__ = ["BLOCK", "EER", "LABELS", "compute_eer", "format_pooled_csv", "pooled_eers", "scenario_masks"]
