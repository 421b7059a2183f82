"""Class colours and marker shapes that stay apart for colour-blind readers.

Colours are the Okabe-Ito set (Okabe & Ito 2008, "Color Universal Design"), which stays
distinguishable under protanopia, deuteranopia and tritanopia, plus grey and black for the classes
outside the differential. Seven colours cannot separate 21 classes on their own, so every class
also has a marker shape (the second cue), and the page's legend and tool tips name the code (the
third). Within a colour the shapes differ, so no two Matek classes share a (colour, shape) pair.

Colours follow lineage where they can (granulocytic orange, erythroid green, lymphoid blue,
eosinophil/basophil purple, blasts and faggot cells vermillion), so a reader sees the lineage at a
glance and the shape tells the stage. Codes of other schemes get the unused pairs in a fixed order.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# Okabe-Ito (hex as published) plus the two neutral tones used for non-counted classes
OKABE_ITO: dict[str, str] = {
    "orange": "#e69f00",
    "sky_blue": "#56b4e9",
    "bluish_green": "#009e73",
    "yellow": "#f0e442",
    "blue": "#0072b2",
    "vermillion": "#d55e00",
    "reddish_purple": "#cc79a7",
    "black": "#000000",
}
GREY = "#8c8c8c"

# unit-radius SVG paths centred on (0, 0); the page scales them with a transform
SHAPE_PATHS: dict[str, str] = {
    "circle": "M1,0A1,1 0 1,1 -1,0A1,1 0 1,1 1,0Z",
    "square": "M-0.85,-0.85H0.85V0.85H-0.85Z",
    "diamond": "M0,-1.15L1.15,0L0,1.15L-1.15,0Z",
    "triangle": "M0,-1.1L1.05,0.8H-1.05Z",
    "triangle_down": "M0,1.1L1.05,-0.8H-1.05Z",
    "star": "M0,-1.2L0.29,-0.4L1.14,-0.37L0.47,0.15L0.71,0.97L0,0.49L-0.71,0.97L-0.47,0.15L-1.14,-0.37L-0.29,-0.4Z",
    "plus": "M-0.3,-1H0.3V-0.3H1V0.3H0.3V1H-0.3V0.3H-1V-0.3H-0.3Z",
    "cross": "M-0.92,-0.5L-0.5,-0.92L0,-0.42L0.5,-0.92L0.92,-0.5L0.42,0L0.92,0.5L0.5,0.92L0,0.42L-0.5,0.92L-0.92,0.5L-0.42,0Z",
    "hexagon": "M1,0L0.5,0.87L-0.5,0.87L-1,0L-0.5,-0.87L0.5,-0.87Z",
}


@dataclass(frozen=True)
class ClassStyle:
    """How one class is drawn: fill/stroke colour, marker shape and a readable text colour on it."""

    color: str
    shape: str

    @property
    def text_color(self) -> str:
        """Black or white, whichever reads better on ``color`` (WCAG relative luminance)."""
        return "#000000" if relative_luminance(self.color) > 0.3 else "#ffffff"

    @property
    def rgb(self) -> tuple[int, int, int]:
        """``color`` as an (r, g, b) tuple of 0-255 integers."""
        h = self.color.lstrip("#")
        return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


_O = OKABE_ITO
MATEK_STYLES: dict[str, ClassStyle] = {
    "BLA": ClassStyle(_O["vermillion"], "circle"),
    "FGC": ClassStyle(_O["vermillion"], "star"),
    "PMO": ClassStyle(_O["orange"], "diamond"),
    "MYB": ClassStyle(_O["orange"], "square"),
    "MMZ": ClassStyle(_O["orange"], "triangle"),
    "NGB": ClassStyle(_O["orange"], "triangle_down"),
    "NGS": ClassStyle(_O["orange"], "circle"),
    "EOS": ClassStyle(_O["reddish_purple"], "circle"),
    "ABE": ClassStyle(_O["reddish_purple"], "star"),
    "BAS": ClassStyle(_O["reddish_purple"], "square"),
    "PEB": ClassStyle(_O["bluish_green"], "diamond"),
    "EBO": ClassStyle(_O["bluish_green"], "circle"),
    "LYT": ClassStyle(_O["blue"], "circle"),
    "LYI": ClassStyle(_O["blue"], "diamond"),
    "HAC": ClassStyle(_O["blue"], "star"),
    "PLM": ClassStyle(_O["sky_blue"], "square"),
    "MON": ClassStyle(_O["sky_blue"], "triangle"),
    "ART": ClassStyle(GREY, "cross"),
    "NIF": ClassStyle(GREY, "plus"),
    "OTH": ClassStyle(_O["black"], "diamond"),
    "KSC": ClassStyle(_O["black"], "triangle"),
}

# the order in which codes outside the Matek set are given the pairs no Matek class uses
_SPARE_COLORS = ("yellow", "sky_blue", "bluish_green", "reddish_purple", "vermillion", "orange", "blue")
_SPARE_SHAPES = (
    "hexagon",
    "plus",
    "cross",
    "square",
    "diamond",
    "triangle",
    "triangle_down",
    "star",
    "circle",
)


def relative_luminance(color: str) -> float:
    """WCAG 2 relative luminance of a ``#rrggbb`` colour (0 black .. 1 white)."""
    h = color.lstrip("#")

    def channel(v: int) -> float:
        c = v / 255.0
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(int(h[i : i + 2], 16)) for i in (0, 2, 4))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def class_styles(codes: Iterable[str]) -> dict[str, ClassStyle]:
    """A style for each code: fixed for Matek codes, distinct spare pairs for any other code.

    Other codes (a configured scheme's, say ``lymphoid``) get, in sorted order, the first
    (colour, shape) pairs that neither a Matek class nor an earlier code uses, so one page never
    draws two classes alike and the same scheme always looks the same.

    Example:
        >>> class_styles(["BLA", "zzz"])["BLA"].shape
        'circle'
    """
    codes = list(dict.fromkeys(codes))
    out = {c: MATEK_STYLES[c] for c in codes if c in MATEK_STYLES}
    used = {(s.color, s.shape) for s in MATEK_STYLES.values()}
    spare = (
        ClassStyle(_O[colour], shape)
        for shape in _SPARE_SHAPES
        for colour in _SPARE_COLORS
        if (_O[colour], shape) not in used
    )
    for code in sorted(c for c in codes if c not in MATEK_STYLES):
        style = next(spare, None)
        out[code] = style if style is not None else ClassStyle(GREY, "hexagon")
    return {c: out[c] for c in codes}


def class_style(code: str) -> ClassStyle:
    """The style of one code (a code outside the Matek set gets the first spare pair)."""
    return class_styles([code])[code]
