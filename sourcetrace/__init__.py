"""sourcetrace: the library behind the five STOPA source-tracing stage scripts.

One module per concern: `config` (JSON configs and --set overrides), `protocols`
(enrollment and trial protocol parsing), `audio` (decoding to 16 kHz mono), `extraction`
(the extraction engine shared by stages 1 and 3), `store` (embeddings with their utterance
ids, atomic writes), `scoring` (cosine scores), `metrics` (EER and pooling), `stages`
(the five stages), `cli` (the shared command line).
"""
