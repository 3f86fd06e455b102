"""Calcium indicator names as they appear in data, and the families of similar indicators.

Data spell indicators in many ways (``OGB1`` / ``OGB-1``, ``GCaMP8f`` / ``jGCaMP8f``,
``XCaMPgf`` / ``XCaMP-Gf``); :func:`indicator_key` makes them comparable. A *family* groups
indicators of similar kinetics and brightness (the jGCaMP8 variants; the red R-CaMP1.07 and
jRCaMP1a); the other indicators are each a family of their own.
"""

from __future__ import annotations

UNKNOWN = "unknown"
#: canonical indicator names (CASCADE ground-truth folders and simulator presets)
INDICATORS: tuple[str, ...] = (
    "OGB-1", "Cal-520", "GCaMP5k", "GCaMP6f", "GCaMP6s", "jGCaMP7f", "jGCaMP8f", "jGCaMP8m",
    "jGCaMP8s", "R-CaMP", "jRCaMP1a", "XCaMP-Gf",
)
#: indicator -> family, for indicators that share a family with others
FAMILIES: dict[str, str] = {
    "jGCaMP8f": "jGCaMP8", "jGCaMP8m": "jGCaMP8", "jGCaMP8s": "jGCaMP8",
    "R-CaMP": "red", "jRCaMP1a": "red",
}


def indicator_key(name: str) -> str:
    """Spelling-insensitive key of an indicator name (``OGB1`` = ``OGB-1``, ``GCaMP8f`` =
    ``jGCaMP8f``, ``XCaMPgf`` = ``XCaMP-Gf``)."""
    key = (name or "").lower().replace("-", "").replace("_", "").replace(" ", "")
    return key[1:] if key.startswith("jgcamp") else key


def indicator_index(name: str | None, vocabulary: tuple[str, ...] | list[str]) -> int | None:
    """Index of ``name`` in ``vocabulary`` (spelling-insensitive), None if it is not there."""
    key = indicator_key(name or "")
    for i, v in enumerate(vocabulary):
        if key and key == indicator_key(v):
            return i
    return None


def canonical_indicator(name: str | None) -> str | None:
    """The name of :data:`INDICATORS` that ``name`` spells, None if it is not one of them."""
    i = indicator_index(name, INDICATORS)
    return None if i is None else INDICATORS[i]


def indicator_family(name: str | None) -> str:
    """The family of an indicator named in data (:data:`FAMILIES`, else the indicator's
    canonical name), or :data:`UNKNOWN` for an empty or unknown name."""
    canonical = canonical_indicator(name)
    if canonical is None:
        return UNKNOWN
    return FAMILIES.get(canonical, canonical)
