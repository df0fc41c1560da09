"""A box-plot chart of reward distributions as a PNG, drawn with numpy and written with zlib (no plotting library).

One row per agent: whiskers p05..p95, box p25..p75, a line at the median, a dot at the mean and a red tick at
CVaR 5 %. Labels use a small built-in 3x5 pixel font. ``markdown_image`` wraps the PNG for MetadataValue.md.
"""

from __future__ import annotations

import base64
import math
import struct
import zlib

import numpy as np
import pandas as pd

from agent_pipeline.numbers import finite_number

# 3x5 glyphs, rows top to bottom; lower-case text is drawn in capitals.
_FONT = {
    "0": ("###", "#.#", "#.#", "#.#", "###"), "1": (".#.", "##.", ".#.", ".#.", "###"),
    "2": ("###", "..#", "###", "#..", "###"), "3": ("###", "..#", ".##", "..#", "###"),
    "4": ("#.#", "#.#", "###", "..#", "..#"), "5": ("###", "#..", "###", "..#", "###"),
    "6": ("###", "#..", "###", "#.#", "###"), "7": ("###", "..#", ".#.", ".#.", ".#."),
    "8": ("###", "#.#", "###", "#.#", "###"), "9": ("###", "#.#", "###", "..#", "###"),
    "A": (".#.", "#.#", "###", "#.#", "#.#"), "B": ("##.", "#.#", "##.", "#.#", "##."),
    "C": (".##", "#..", "#..", "#..", ".##"), "D": ("##.", "#.#", "#.#", "#.#", "##."),
    "E": ("###", "#..", "##.", "#..", "###"), "F": ("###", "#..", "##.", "#..", "#.."),
    "G": (".##", "#..", "#.#", "#.#", ".##"), "H": ("#.#", "#.#", "###", "#.#", "#.#"),
    "I": ("###", ".#.", ".#.", ".#.", "###"), "J": ("..#", "..#", "..#", "#.#", ".#."),
    "K": ("#.#", "#.#", "##.", "#.#", "#.#"), "L": ("#..", "#..", "#..", "#..", "###"),
    "M": ("#.#", "###", "###", "#.#", "#.#"), "N": ("##.", "#.#", "#.#", "#.#", "#.#"),
    "O": (".#.", "#.#", "#.#", "#.#", ".#."), "P": ("##.", "#.#", "##.", "#..", "#.."),
    "Q": (".#.", "#.#", "#.#", "##.", ".##"), "R": ("##.", "#.#", "##.", "#.#", "#.#"),
    "S": (".##", "#..", ".#.", "..#", "##."), "T": ("###", ".#.", ".#.", ".#.", ".#."),
    "U": ("#.#", "#.#", "#.#", "#.#", "###"), "V": ("#.#", "#.#", "#.#", "#.#", ".#."),
    "W": ("#.#", "#.#", "###", "###", "#.#"), "X": ("#.#", "#.#", ".#.", "#.#", "#.#"),
    "Y": ("#.#", "#.#", ".#.", ".#.", ".#."), "Z": ("###", "..#", ".#.", "#..", "###"),
    ".": ("...", "...", "...", "...", ".#."), "-": ("...", "...", "###", "...", "..."),
    "_": ("...", "...", "...", "...", "###"), ":": ("...", ".#.", "...", ".#.", "..."),
    "%": ("#.#", "..#", ".#.", "#..", "#.#"), "/": ("..#", "..#", ".#.", "#..", "#.."),
    "(": (".#.", "#..", "#..", "#..", ".#."), ")": (".#.", "..#", "..#", "..#", ".#."),
    "=": ("...", "###", "...", "###", "..."), "+": ("...", ".#.", "###", ".#.", "..."),
    " ": ("...", "...", "...", "...", "..."), ",": ("...", "...", "...", ".#.", "#.."),
}
_SCALE = 2
_CHAR_W = 4 * _SCALE  # 3 pixels + 1 space

WHITE = (255, 255, 255)
INK = (40, 40, 40)
GRID = (215, 215, 215)
BOX = (120, 160, 220)
MEDIAN = (20, 50, 120)
MEAN = (230, 140, 20)
CVAR = (200, 30, 30)


def _text(img: np.ndarray, x: int, y: int, text: str, color=INK) -> None:
    for ch in text.upper():
        glyph = _FONT.get(ch, _FONT[" "])
        for r, row in enumerate(glyph):
            for c, bit in enumerate(row):
                if bit == "#":
                    y0, x0 = y + r * _SCALE, x + c * _SCALE
                    img[max(y0, 0):max(y0 + _SCALE, 0), max(x0, 0):max(x0 + _SCALE, 0)] = color
        x += _CHAR_W


def _rect(img: np.ndarray, x0: float, y0: float, x1: float, y1: float, color) -> None:
    h, w, _ = img.shape
    xa, xb = sorted((int(round(x0)), int(round(x1))))
    ya, yb = sorted((int(round(y0)), int(round(y1))))
    img[max(ya, 0):min(yb + 1, h), max(xa, 0):min(xb + 1, w)] = color


def png_bytes(img: np.ndarray) -> bytes:
    """Encode an (h, w, 3) uint8 array as PNG."""
    h, w, _ = img.shape
    raw = b"".join(b"\x00" + img[row].tobytes() for row in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def _fmt(v: float) -> str:
    return f"{v:.3g}"


def boxplot_png(frame: pd.DataFrame, window: str, *, width: int = 760) -> bytes:
    """Box plots of one window's distributions, one row per agent with data."""
    rows = frame[(frame["window"] == window) & (frame["n"] > 0)].sort_values("agent")
    label_w = max([len(str(a)) for a in rows["agent"]] + [6]) * _CHAR_W + 16
    row_h, top, bottom = 34, 34, 34
    height = top + bottom + row_h * max(len(rows), 1)
    img = np.full((height, width, 3), WHITE, dtype=np.uint8)
    _text(img, 8, 8, f"rewards, window {window}: p05-p95, p25-p75, median; mean orange, cvar 5% red")
    if rows.empty:
        _text(img, 8, top + 8, "no runs in this window")
        return png_bytes(img)
    values = pd.concat([rows[c] for c in ("p05", "p95", "cvar05", "mean")]).astype(float)
    values = values[np.isfinite(values)]
    lo, hi = float(values.min()), float(values.max())
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if math.isclose(lo, hi):
        lo, hi = lo - 1.0, hi + 1.0
    pad = (hi - lo) * 0.05
    lo, hi = lo - pad, hi + pad
    x0, x1 = label_w, width - 16

    def sx(v: float) -> float:
        return x0 + (v - lo) / (hi - lo) * (x1 - x0)

    plot_bottom = top + row_h * len(rows)
    for tick in np.linspace(lo, hi, 5):
        _rect(img, sx(tick), top, sx(tick), plot_bottom, GRID)
        label = _fmt(float(tick))
        left = int(sx(tick)) - len(label) * _CHAR_W // 2
        _text(img, max(2, min(left, width - len(label) * _CHAR_W - 2)), plot_bottom + 8, label)
    _rect(img, sx(0.0), top, sx(0.0) + 1, plot_bottom, INK)
    for i, r in enumerate(rows.itertuples(index=False)):
        cy = top + i * row_h + row_h // 2
        _text(img, 8, cy - 5, str(r.agent))
        stats = [r.p05, r.p25, r.p50, r.p75, r.p95]
        if any(finite_number(v) is None for v in stats):
            continue
        _rect(img, sx(r.p05), cy, sx(r.p95), cy, INK)
        _rect(img, sx(r.p05), cy - 5, sx(r.p05), cy + 5, INK)
        _rect(img, sx(r.p95), cy - 5, sx(r.p95), cy + 5, INK)
        _rect(img, sx(r.p25), cy - 9, sx(r.p75), cy + 9, BOX)
        _rect(img, sx(r.p50), cy - 9, sx(r.p50) + 1, cy + 9, MEDIAN)
        if finite_number(r.cvar05) is not None:
            _rect(img, sx(r.cvar05), cy - 11, sx(r.cvar05) + 1, cy + 11, CVAR)
        if finite_number(r.mean) is not None:
            _rect(img, sx(r.mean) - 3, cy - 3, sx(r.mean) + 3, cy + 3, MEAN)
    return png_bytes(img)


def markdown_image(png: bytes, alt: str) -> str:
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"
