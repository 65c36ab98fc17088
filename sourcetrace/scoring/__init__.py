"""Score back-ends: (trial utterances x fingerprints) score matrices from embeddings.

`cosine` (`similarity`) is the STOPA score; `centered`, `asnorm` and `knn` are unsupervised
alternatives that also read the enrollment embeddings of stage 1 (`backends`). Every
back-end is a pure function of embedding matrices, computed in float64 and returned as
float32; its formula is in its docstring.
"""
from .backends import BACKENDS, Enrollment, asnorm, centered, knn, score_matrix
from .cosine import similarity

__all__ = ["BACKENDS", "Enrollment", "asnorm", "centered", "knn", "score_matrix", "similarity"]
