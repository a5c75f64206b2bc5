"""Typed access to the arrays of a zarr group.

zarr types ``group[name]`` as ``Array | Group``: :func:`child_array` checks which one the
node is, so the caller gets an ``Array`` (and a one-line :class:`~razn.errors.RaznError`
naming the file, rather than a missing attribute later, when it is a group).
"""

from __future__ import annotations

from os import PathLike

import zarr

from razn.errors import RaznError


def child_array(
    group: zarr.Group,
    name: str,
    path: str | PathLike[str] | None = None,
    error: type[RaznError] = RaznError,
) -> zarr.Array:
    """The array ``name`` of ``group``; raises ``error`` (about ``path``) if it is a group."""
    node = group[name]
    if not isinstance(node, zarr.Array):
        raise error(f"zarr node {name!r} is a group; expected an array", path)
    return node
