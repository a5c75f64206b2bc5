"""OpenSlide's reasons, said in words a user can act on.

OpenSlide's messages name the failing check (*Couldn't get image flavor*, *Nonzero
subblock channel 1*), not what is wrong with the file or what to do about it. The known
ones get both put in front; the original text is kept after them, so nothing is lost and
an unknown message still reads as OpenSlide wrote it.
"""

from __future__ import annotations

KNOWN_REASONS: tuple[tuple[str, str], ...] = (
    (
        "couldn't get image flavor",
        "DICOM without a whole-slide ImageType: not part of a slide series OpenSlide reads; "
        "give the VOLUME file of a whole-slide DICOM series",
    ),
    (
        "unsupported transfer syntax",
        "DICOM compressed with a codec OpenSlide does not decode (e.g. JPEG-LS or "
        "JPEG 2000); transcode it to baseline JPEG",
    ),
    (
        "subblock channel",
        "Zeiss CZI with several channels: OpenSlide reads brightfield RGB CZI only; "
        "convert it (e.g. to OME-TIFF with bfconvert)",
    ),
    (
        "subblock dimension",
        "Zeiss CZI with time, z or scene dimensions OpenSlide does not read; convert it "
        "(e.g. to OME-TIFF with bfconvert)",
    ),
    (
        "index.dat",
        "MIRAX: its data files are missing or damaged; keep the .mrxs file beside its "
        "folder of Index.dat and Data*.dat files, copied whole",
    ),
    (
        "slidedat.ini",
        "MIRAX: its data files are missing or damaged; keep the .mrxs file beside its "
        "folder of Index.dat and Data*.dat files, copied whole",
    ),
    (
        "can't validate jpeg",
        "damaged JPEG tiles: the file is incomplete or corrupt; copy it again or re-export it",
    ),
    (
        "bogus marker length",
        "damaged JPEG tiles: the file is incomplete or corrupt; copy it again or re-export it",
    ),
    (
        "unsupported tiff compression",
        "TIFF compressed with a codec OpenSlide does not decode; re-save it with JPEG or "
        "LZW tiles (e.g. vips tiffsave --tile --pyramid --compression jpeg)",
    ),
)
"""``(lower-case fragment of OpenSlide's message, what it means and what to do)``."""


def explain(reason: str) -> str:
    """``reason`` (OpenSlide's text) with its meaning and remedy before it, when known."""
    lowered = reason.lower()
    for fragment, meaning in KNOWN_REASONS:
        if fragment in lowered:
            return f"{meaning} (OpenSlide: {reason})"
    return reason
