"""Handing freed heap memory back to the operating system between slides.

glibc keeps memory that Python, numpy and torch free in its heaps (one per thread that
allocated: the reader threads each have one) for reuse; after a slide's large
transient arrays (the GeoJSON tracing, the output pyramids) it sits there unused, and
a batch's resident memory creeps up over its first slides. ``malloc_trim`` returns it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name).malloc_trim  # type: ignore[no-any-return]
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        return None


def release_free_memory() -> bool:
    """Return the C heap's free memory to the OS; whether this platform can (glibc)."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
