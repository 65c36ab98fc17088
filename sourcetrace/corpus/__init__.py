"""Corpus importers: a labelled manifest -> the toolkit's protocol layout and a config.

`python -m sourcetrace.corpus PRESET MANIFEST... --out DIR` (see `cli`). One module per
preset (`mlaad`, `asvspoof2019la`; the generic `manifest` with the reader), `design` (STOPA's
enrollment and trial design, seeded), `importer` (checks, attack ids, summary) and `layout`
(the files written, all or nothing). Reference: docs/corpus_import.md.
"""
