"""Content hashes: the one place files are hashed (catalogs, model bundles, registry uploads).

>>> import tempfile, os
>>> with tempfile.NamedTemporaryFile(delete=False) as fh:
...     _ = fh.write(b"xrd")
>>> file_sha256(fh.name) == bytes_sha256(b"xrd")
True
>>> os.remove(fh.name)
"""

from __future__ import annotations

import hashlib

#: Bytes read at a time, so hashing a multi-GB file keeps memory flat.
BLOCK_BYTES = 1 << 20


def bytes_sha256(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def file_sha256(path) -> str:
    """Hex sha256 of a file's bytes, read in blocks of :data:`BLOCK_BYTES`."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(BLOCK_BYTES), b""):
            h.update(block)
    return h.hexdigest()
