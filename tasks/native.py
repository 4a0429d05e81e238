"""Jobs whose heavy lifting happens in C code that releases the GIL.

hashlib and zlib drop the GIL while they chew on a buffer, so these scale on
threads as well as on processes.
"""

from __future__ import annotations

import hashlib
import random
import zlib

from coredash.taskapi import checkpoint, task

MIB = 1 << 20

# Built once per process so that a job measures hashing/compressing, not setup.
_random_block = random.Random(1).randbytes(MIB)
_words = ("core", "thread", "process", "queue", "lock", "GIL", "future", "loop", "pickle")
_text_rng = random.Random(2)
_text_block = (" ".join(_text_rng.choice(_words) for _ in range(MIB // 5)).encode())[:MIB]


@task(
    description="SHA-256 over mb MiB in 1 MiB chunks (C code, releases the GIL)",
    size="mb",
    default=1024,
    unit="MiB",
    releases_gil=True,
    kind="gil-free",
)
def sha256(mb: int = 1024) -> str:
    if mb < 0:
        raise ValueError("mb must be >= 0")
    digest = hashlib.sha256()
    for _ in range(mb):
        checkpoint()
        digest.update(_random_block)
    return digest.hexdigest()


@task(
    description="zlib level-6 compression of mb MiB of text (C code, releases the GIL)",
    size="mb",
    default=24,
    unit="MiB",
    releases_gil=True,
    kind="gil-free",
)
def zlib_compress(mb: int = 24) -> int:
    """Return the compressed size in bytes."""
    if mb < 0:
        raise ValueError("mb must be >= 0")
    compressed = 0
    for _ in range(mb):
        checkpoint()
        compressed += len(zlib.compress(_text_block, 6))
    return compressed
