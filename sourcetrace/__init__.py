"""sourcetrace: the library behind the STOPA source-tracing stage scripts.

Each stage is declared once in `registry`; `cli` and `runner` run it, `provenance` keeps its
record, `store` owns every output path and format, `stages` holds one body per stage. Below
them: `config`, `protocols`, `audio`, `extraction` (the engine of stages 1 and 3), `scoring`,
`pooling`, `metrics`, `ranks` (torchrun), `report`; `trace` (trace_audio.py: tracing
audio files with a system's stage outputs). See README.md, "Layout".
"""
