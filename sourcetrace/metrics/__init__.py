"""Metrics, pure functions on arrays: the reference EER and the STOPA pooling rules (`eer`),
EER / min DCF / min Cllr / ROCCH-EER on blocks of tied scores (`detection`), the bootstrap
of the EER over fingerprints (`bootstrap`), attribution and unknown-source detection
(`attribution`) and the enrollment-condition groups of fingerprints (`groups`)."""
from .eer import EER, LABELS, compute_eer, format_pooled_csv, pooled_eers, scenario_masks

__all__ = ["EER", "LABELS", "compute_eer", "format_pooled_csv", "pooled_eers", "scenario_masks"]
