"""Every output path and file format: readers beside writers, atomic writes, clean-up.

`paths` names every output; `files` writes atomically (honouring the umask) and cleans up
after killed writers; `identities` identifies files (content digests, size and time, audio
listings) for the records; `embeddings`, `fingerprints`, `scores` and `skips` are the formats of
stages 1/3, 2, 4 and the skip manifest.
"""
from .embeddings import ids_path, load_embeddings, save_embeddings
from .files import atomic_path, os_error, remove_parts, remove_tree, write_text
from .identities import LISTINGS, audio_identity, file_digest, listing_digest, stat_identity
from .fingerprints import read_fingerprints, write_fingerprints
from .paths import Paths
from .skips import read_skips

__all__ = ["LISTINGS", "Paths", "atomic_path", "audio_identity", "file_digest", "ids_path", "listing_digest",
           "load_embeddings", "os_error", "read_fingerprints", "read_skips", "remove_parts", "remove_tree",
           "save_embeddings", "stat_identity", "write_fingerprints", "write_text"]
