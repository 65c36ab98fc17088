"""One module per stage body, each reading like its README paragraph.

`enroll` (1), `fingerprints` (2), `trials` (3), `score` (4), `pool` (5); `extractor` holds
what stages 1 and 3 share (the model, audio paths, the input identities of audio files).
"""
