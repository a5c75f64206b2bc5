"""A slide's metadata as a plain record, for ``razn info`` and for run summaries."""

from __future__ import annotations

from typing import Any

from razn.slide.base import Slide


def slide_info(slide: Slide, with_properties: bool = False) -> dict[str, Any]:
    """Vendor, mpp, objective power, tile size, associated images and levels of ``slide``.

    ``mpp`` is ``[x, y]`` in µm per level-0 pixel or None; ``levels`` lists every
    native level's ``width``, ``height`` and ``downsample`` (level-0 px per pixel).
    """
    info: dict[str, Any] = {
        "path": str(slide.path) if slide.path else None,
        "name": slide.name,
        "backend": slide.backend,
        "vendor": slide.vendor,
        "mpp": list(slide.mpp) if slide.mpp else None,
        "mpp_source": slide.mpp_source,
        "objective_power": slide.objective_power,
        "tile_size": list(slide.tile_size) if slide.tile_size else None,
        "associated_images": list(slide.associated_images),
        "levels": [
            {"width": w, "height": h, "downsample": d}
            for (w, h), d in zip(slide.level_dimensions, slide.level_downsamples, strict=True)
        ],
    }
    if with_properties:
        info["properties"] = dict(slide.properties)
    return info


def probe_read(slide: Slide, size: int = 64) -> None:
    """Read a small region at the centre of the coarsest level; raises if the pixels are unreadable.

    Metadata can be fine while the tiles are corrupt, so ``razn info`` checks one read.
    """
    level = slide.level_count - 1
    width, height = slide.level_dimensions[level]
    downsample = slide.level_downsamples[level]
    w, h = min(size, width), min(size, height)
    x = int((width - w) // 2 * downsample)
    y = int((height - h) // 2 * downsample)
    slide.read_region((x, y), level, (w, h))


def format_info(info: dict[str, Any]) -> str:
    """Human-readable, multi-line rendering of :func:`slide_info`."""
    mpp = info["mpp"]
    if mpp is None:
        mpp_text = (
            "missing (give --mpp X to razn info and razn segment; training and tissue "
            "detection assume tissue.fallback_mpp)"
        )
    else:
        mpp_text = f"{mpp[0]:.4g} x {mpp[1]:.4g} µm/px"
        if info.get("mpp_source") == "override":
            mpp_text += " (override)"
    power = info["objective_power"]
    tile = info["tile_size"]
    rows = [
        ("vendor", info["vendor"] or "unknown"),
        ("mpp", mpp_text),
        ("objective power", f"{power:g}x" if power else "missing"),
        ("tile size", f"{tile[0]} x {tile[1]}" if tile else "untiled"),
        ("associated images", ", ".join(info["associated_images"]) or "none"),
        ("levels", str(len(info["levels"]))),
    ]
    lines = [f"{info['path'] or info['name']}"]
    lines += [f"  {key:<18} {value}" for key, value in rows]
    lines.append(f"    {'level':>5} {'width':>8} {'height':>8} {'downsample':>11}")
    for index, level in enumerate(info["levels"]):
        lines.append(
            f"    {index:>5} {level['width']:>8} {level['height']:>8} {level['downsample']:>11.4f}"
        )
    properties = info.get("properties")
    if properties is not None:
        lines.append(f"  properties ({len(properties)})")
        lines += [f"    {key} = {value}" for key, value in sorted(properties.items())]
    return "\n".join(lines)
