"""The synthetic world: rendered scenes of simple objects, the embedded data source that needs no download.

`render_world` draws JPEG scenes with PIL's `ImageDraw` only and writes their boxes in the COCO instances
format, so the world goes through the same reader (`read_coco`) as real COCO data. It exists so that every
pipeline (generation, `datasets` builders, evaluation, training) runs offline, in tests and in demos.

What is in it:

- 16 classes in 4 categories (`CATEGORIES`): fruit (apple, banana, orange, strawberry), vehicles (car,
  bus, bicycle, boat), household objects (cup, umbrella, key, clock) and shapes (star, heart, crescent,
  arrow). Each is drawn from primitives with its usual colours, a dark silhouette outline and a few
  details (windows and wheels, seeds, clock hands), so a real vision-language model can name it.
- Scenes are built for the task generators: 1 to 3 classes per scene (mostly 1 or 2), 1 to 5 instances
  per class skewed to small counts (so counts 1 to 4 are all common), objects placed by rejection
  sampling so that they barely overlap, every box at least 5% of the image (every image is eligible
  under the paper's 0.05 rule) unless `small_object_rate` asks for occasional tiny ones. Classes are
  dealt from a shuffled deck, so class frequencies are balanced and every class is absent from most
  images. Backgrounds vary (solid, gradient, wall and table, faint texture) but stay light and
  low-contrast so that they never look like objects.
- Boxes are the tight bounding boxes of the drawn pixels (measured on each object's alpha layer), so
  a box contains its object and lies inside the image.

Same arguments give byte-identical files: the scene plans come from one seeded stream, each image is
rendered from its own stream derived from (seed, image index), JPEG quality is fixed and the JSON holds
no timestamps. The world is rendered into a temporary sibling folder and renamed into place, so a
folder with `annotations.json` is complete; calling `render_world` again on it is a no-op.
"""

from __future__ import annotations

import colorsys
import json
import logging
import math
import os
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from mimic.atomic import make_temp_dir
from mimic.builders.index import DEFAULT_MIN_BOX_FRAC, AnnotationIndex
from mimic.errors import ConfigError

__all__ = [
    "CATEGORIES",
    "CLASSES",
    "DEFAULT_WORLD_IMAGES",
    "WORLD_VERSION",
    "WorldPaths",
    "default_cache_dir",
    "default_world_dir",
    "read_synthetic",
    "render_world",
]

logger = logging.getLogger(__name__)

# Bump when a change to the drawing or the scene plans changes the rendered bytes: cached worlds are
# keyed by it, so an old cache is never mistaken for the current world.
WORLD_VERSION = 1
DEFAULT_WORLD_IMAGES = 300

_JPEG_QUALITY = 90
_SUPERSAMPLE = 2  # drawn at twice the size and reduced: ImageDraw itself does not anti-alias
_OUTLINE_RGB = (38, 36, 40)

# Scene statistics (see the module docstring for why they look like this).
_CLASSES_PER_SCENE = ((1, 2, 3), (0.45, 0.40, 0.15))
_COUNT_WEIGHTS = ((1, 2, 3, 4, 5), (0.33, 0.27, 0.20, 0.13, 0.07))
_MAX_OBJECTS = 8
# Boxes must stay eligible after rotation and cropping, so the targets keep a margin above 0.05.
_MIN_TARGET_FRAC = 0.062
_MIN_OK_FRAC = DEFAULT_MIN_BOX_FRAC + 0.002
_SMALL_FRAC = (0.006, 0.03)
_SMALL_MAX_FRAC = 0.045
# Two boxes may share at most this fraction of the smaller one: touching corners look natural,
# hidden objects would make counts ambiguous.
_MAX_OVERLAP = 0.06
_PLACEMENT_TRIES = 80
_SHRINK_STEPS = 4


# ---------------------------------------------------------------------------------------------- drawing
RGB = tuple[int, int, int]


class _Pen:
    """ImageDraw in unit coordinates of a box: (0, 0) is its top-left corner, (1, 1) its bottom-right.

    Radii of circles are fractions of the box height, so circles stay round in non-square boxes.
    """

    def __init__(self, draw: ImageDraw.ImageDraw, box: tuple[float, float, float, float]):
        self.d = draw
        self.x0, self.y0, x1, y1 = box
        self.w, self.h = x1 - self.x0, y1 - self.y0

    def p(self, fx: float, fy: float) -> tuple[float, float]:
        return (self.x0 + fx * self.w, self.y0 + fy * self.h)

    def px(self, f: float) -> float:
        """A length given as a fraction of the box height, in pixels."""
        return f * self.h

    def ellipse(self, fx0, fy0, fx1, fy1, fill) -> None:
        self.d.ellipse([self.p(fx0, fy0), self.p(fx1, fy1)], fill=fill)

    def circle(self, fcx, fcy, fr, fill) -> None:
        cx, cy = self.p(fcx, fcy)
        r = self.px(fr)
        self.d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)

    def ring(self, fcx, fcy, fr, fwidth, fill) -> None:
        cx, cy = self.p(fcx, fcy)
        r = self.px(fr)
        self.d.ellipse([cx - r, cy - r, cx + r, cy + r], outline=fill, width=max(1, round(self.px(fwidth))))

    def erase_circle(self, fcx, fcy, fr) -> None:
        # On an RGBA layer ImageDraw writes pixels without blending, so a transparent fill cuts a hole.
        self.circle(fcx, fcy, fr, (0, 0, 0, 0))

    def rect(self, fx0, fy0, fx1, fy1, fill, fradius: float = 0.0) -> None:
        xy = [self.p(fx0, fy0), self.p(fx1, fy1)]
        if fradius > 0:
            self.d.rounded_rectangle(xy, radius=self.px(fradius), fill=fill)
        else:
            self.d.rectangle(xy, fill=fill)

    def polygon(self, points, fill) -> None:
        self.d.polygon([self.p(x, y) for x, y in points], fill=fill)

    def line(self, points, fill, fwidth: float) -> None:
        self.d.line([self.p(x, y) for x, y in points], fill=fill, width=max(1, round(self.px(fwidth))), joint="curve")

    def pieslice(self, fx0, fy0, fx1, fy1, start, end, fill) -> None:
        self.d.pieslice([self.p(fx0, fy0), self.p(fx1, fy1)], start, end, fill=fill)

    def arc(self, fx0, fy0, fx1, fy1, start, end, fill, fwidth: float) -> None:
        self.d.arc([self.p(fx0, fy0), self.p(fx1, fy1)], start, end, fill=fill, width=max(1, round(self.px(fwidth))))


def _jitter(rgb: RGB, rng: random.Random, amount: int = 14) -> RGB:
    return tuple(min(255, max(0, c + rng.randint(-amount, amount))) for c in rgb)  # type: ignore[return-value]


def _shade(rgb: RGB, factor: float) -> RGB:
    """Darker (factor < 1) or lighter (factor > 1, towards white) version of a colour."""
    if factor <= 1:
        return tuple(round(c * factor) for c in rgb)  # type: ignore[return-value]
    t = factor - 1
    return tuple(round(c + (255 - c) * t) for c in rgb)  # type: ignore[return-value]


def _normalised(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Scale a polygon to fill the unit box, so parametric curves need no hand-tuned constants."""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, y0, sx, sy = min(xs), min(ys), (max(xs) - min(xs)) or 1.0, (max(ys) - min(ys)) or 1.0
    return [((x - x0) / sx, (y - y0) / sy) for x, y in points]


@dataclass(frozen=True)
class _ObjectClass:
    name: str
    category: str
    aspect: float  # width / height of the drawing box
    palette: tuple[RGB, ...]  # main colours; one is picked per instance and jittered
    draw: Callable[[_Pen, RGB, random.Random], None]
    max_rotation: float  # degrees either way; vehicles stay nearly upright to look like vehicles
    flip: bool  # mirrored at random (asymmetric objects)


_REGISTRY: list[_ObjectClass] = []


def _object(name, category, *, aspect, palette, max_rotation=12.0, flip=True):
    def wrap(fn):
        _REGISTRY.append(_ObjectClass(name, category, aspect, tuple(palette), fn, max_rotation, flip))
        return fn

    return wrap


# --- fruit
@_object("apple", "fruit", aspect=0.95, palette=[(205, 30, 35), (185, 22, 40), (220, 50, 30)])
def _draw_apple(p: _Pen, c: RGB, rng: random.Random) -> None:
    # Two lobes and a core give the dip at the top that tells an apple from a ball or an orange.
    p.ellipse(0.0, 0.2, 0.6, 1.0, c)
    p.ellipse(0.4, 0.2, 1.0, 1.0, c)
    p.ellipse(0.06, 0.26, 0.94, 0.98, c)
    p.ellipse(0.16, 0.34, 0.34, 0.58, _shade(c, 1.45))
    p.line([(0.5, 0.3), (0.53, 0.14), (0.58, 0.0)], (100, 62, 30), 0.06)
    p.polygon([(0.56, 0.16), (0.7, 0.02), (0.92, 0.02), (0.76, 0.16)], (70, 150, 50))


@_object("banana", "fruit", aspect=2.0, palette=[(245, 208, 45), (240, 196, 35), (250, 220, 70)])
def _draw_banana(p: _Pen, c: RGB, rng: random.Random) -> None:
    n = 24
    top, bottom = [], []
    for k in range(n + 1):
        t = k / n
        cy = 0.08 + 0.62 * (1 - (2 * t - 1) ** 2)  # a smile: ends up, middle down
        half = 0.02 + 0.16 * math.sin(math.pi * t) ** 0.6
        top.append((t, cy - half))
        bottom.append((t, cy + half))
    # A short stalk continues the left end; it is part of the silhouette, so normalise all together.
    stalk = [(-0.07, -0.08), (-0.03, -0.11), (0.03, 0.04), (-0.01, 0.07)]
    pts = _normalised(top + bottom[::-1] + stalk)
    body, stalk = pts[: 2 * (n + 1)], pts[2 * (n + 1) :]
    p.polygon(body, c)
    p.polygon(stalk, (120, 90, 40))
    ridge = [((a[0] + b[0]) / 2, (a[1] + 2 * b[1]) / 3) for a, b in zip(body[2 : n - 1], body[::-1][2 : n - 1], strict=True)]
    p.line(ridge, _shade(c, 0.85), 0.035)
    p.circle(*body[n], 0.05, (70, 50, 25))  # dark tip at the right end


@_object("orange", "fruit", aspect=1.0, palette=[(245, 145, 20), (250, 160, 30), (238, 130, 15)],
         flip=False)
def _draw_orange(p: _Pen, c: RGB, rng: random.Random) -> None:
    p.ellipse(0.0, 0.06, 1.0, 1.0, c)
    dark = _shade(c, 0.86)
    for _ in range(22):  # dimpled peel
        a, r = rng.uniform(0, 2 * math.pi), 0.4 * math.sqrt(rng.random())
        p.circle(0.5 + r * math.cos(a), 0.53 + r * math.sin(a), 0.012, dark)
    p.ellipse(0.2, 0.22, 0.4, 0.42, _shade(c, 1.35))
    p.polygon([(0.5, 0.1), (0.62, 0.0), (0.8, 0.02), (0.64, 0.12)], (60, 140, 45))
    p.circle(0.5, 0.1, 0.03, (95, 110, 40))


@_object("strawberry", "fruit", aspect=0.85, palette=[(215, 30, 45), (200, 25, 40), (228, 45, 55)])
def _draw_strawberry(p: _Pen, c: RGB, rng: random.Random) -> None:
    body = []
    for k in range(41):
        t = math.pi * k / 40  # the upper half of a circle narrowing to a blunt point
        x = math.cos(t)
        y = -math.sin(t) * 0.55
        body.append((x, y))
    body += [(-0.55, 0.7), (-0.2, 1.15), (0.0, 1.2), (0.2, 1.15), (0.55, 0.7)]
    body = [(0.5 + 0.5 * x, 0.26 + 0.74 * (y + 0.55) / 1.75) for x, y in body]
    p.polygon(body, c)
    for row in range(5):  # seeds in staggered rows, narrowing downwards
        y = 0.34 + 0.11 * row
        half = 0.38 * (1 - row / 5.5)
        m = 5 - row // 2
        for j in range(m):
            x = 0.5 - half + (2 * half) * (j + 0.5 * (row % 2) + 0.25) / m
            p.ellipse(x - 0.018, y - 0.025, x + 0.018, y + 0.025, (250, 225, 120))
    green = (60, 150, 50)
    p.polygon([(0.1, 0.26), (0.3, 0.14), (0.5, 0.3), (0.7, 0.14), (0.9, 0.26), (0.62, 0.22), (0.5, 0.36),
               (0.38, 0.22)], green)
    p.polygon([(0.25, 0.16), (0.5, 0.08), (0.75, 0.16), (0.5, 0.26)], green)
    p.line([(0.5, 0.14), (0.53, 0.0)], (80, 120, 40), 0.05)


# --- vehicles
_VEHICLE_COLOURS = [(200, 35, 40), (35, 90, 190), (40, 140, 70), (240, 180, 30), (120, 60, 160), (230, 110, 30)]
_GLASS = (170, 215, 240)
_TYRE = (32, 32, 34)


def _wheel(p: _Pen, cx: float, cy: float, r: float) -> None:
    p.circle(cx, cy, r, _TYRE)
    p.circle(cx, cy, r * 0.5, (185, 185, 190))
    p.circle(cx, cy, r * 0.15, (90, 90, 95))


@_object("car", "vehicles", aspect=2.1, palette=_VEHICLE_COLOURS, max_rotation=3.0)
def _draw_car(p: _Pen, c: RGB, rng: random.Random) -> None:
    p.polygon([(0.2, 0.44), (0.33, 0.06), (0.68, 0.06), (0.83, 0.44)], c)
    p.rect(0.0, 0.38, 1.0, 0.82, c, fradius=0.14)
    p.polygon([(0.27, 0.42), (0.36, 0.13), (0.49, 0.13), (0.49, 0.42)], _GLASS)
    p.polygon([(0.53, 0.42), (0.53, 0.13), (0.65, 0.13), (0.76, 0.42)], _GLASS)
    p.line([(0.51, 0.46), (0.51, 0.76)], _shade(c, 0.6), 0.03)
    p.rect(0.93, 0.48, 1.0, 0.58, (255, 235, 140))
    p.rect(0.0, 0.48, 0.04, 0.58, (220, 60, 50))
    _wheel(p, 0.22, 0.8, 0.2)
    _wheel(p, 0.78, 0.8, 0.2)


@_object("bus", "vehicles", aspect=2.5, palette=[(245, 190, 30), (205, 40, 40), (40, 95, 185), (40, 140, 90)],
         max_rotation=3.0)
def _draw_bus(p: _Pen, c: RGB, rng: random.Random) -> None:
    p.rect(0.0, 0.0, 1.0, 0.86, c, fradius=0.1)
    for k in range(5):
        x0 = 0.04 + k * 0.135
        p.rect(x0, 0.1, x0 + 0.11, 0.42, _GLASS, fradius=0.03)
    p.rect(0.73, 0.1, 0.83, 0.78, _shade(_GLASS, 0.85), fradius=0.02)  # door
    p.line([(0.78, 0.12), (0.78, 0.76)], _shade(c, 0.6), 0.02)
    p.rect(0.87, 0.08, 0.98, 0.5, _GLASS, fradius=0.03)  # windscreen
    p.rect(0.0, 0.54, 0.72, 0.6, _shade(c, 0.7))
    p.rect(0.94, 0.62, 1.0, 0.7, (255, 235, 140))
    _wheel(p, 0.18, 0.85, 0.15)
    _wheel(p, 0.85, 0.85, 0.15)


@_object("bicycle", "vehicles", aspect=1.65, palette=_VEHICLE_COLOURS, max_rotation=3.0)
def _draw_bicycle(p: _Pen, c: RGB, rng: random.Random) -> None:
    r = 0.31
    rear, front = (r / p.w * p.h, 1 - r), (1 - r / p.w * p.h, 1 - r)
    for hub in (rear, front):
        p.ring(*hub, r, 0.06, _TYRE)
        for k in range(6):
            a = k * math.pi / 6
            dx, dy = r * math.cos(a) * p.h / p.w, r * math.sin(a)
            p.line([(hub[0] - dx, hub[1] - dy), (hub[0] + dx, hub[1] + dy)], (150, 150, 155), 0.012)
    crank, seat, head = (0.46, 1 - r), (0.36, 0.26), (0.72, 0.24)
    for a, b in ((rear, crank), (crank, seat), (seat, rear), (seat, head), (head, crank), (head, front)):
        p.line([a, b], c, 0.05)
    p.line([seat, (0.34, 0.12)], (60, 60, 60), 0.04)
    p.polygon([(0.26, 0.08), (0.42, 0.08), (0.4, 0.13), (0.28, 0.13)], (45, 45, 45))
    p.line([head, (0.7, 0.06), (0.8, 0.02)], (60, 60, 60), 0.04)
    p.circle(*crank, 0.05, (90, 90, 95))


@_object("boat", "vehicles", aspect=1.1, palette=[(140, 85, 45), (35, 90, 190), (200, 40, 40), (40, 120, 110)],
         max_rotation=4.0)
def _draw_boat(p: _Pen, c: RGB, rng: random.Random) -> None:
    p.line([(0.5, 0.03), (0.5, 0.74)], (95, 65, 35), 0.035)
    p.polygon([(0.53, 0.05), (0.53, 0.66), (0.93, 0.66)], (248, 246, 238))
    p.polygon([(0.47, 0.14), (0.47, 0.66), (0.13, 0.66)], _jitter((235, 80, 60), rng, 20))
    p.polygon([(0.5, 0.0), (0.64, 0.04), (0.5, 0.08)], (220, 40, 40))  # pennant
    p.polygon([(0.0, 0.7), (1.0, 0.7), (0.84, 1.0), (0.14, 1.0)], c)
    p.rect(0.06, 0.76, 0.95, 0.8, _shade(c, 1.6))


# --- household objects
@_object("cup", "household objects", aspect=1.2,
         palette=[(235, 235, 230), (200, 45, 50), (40, 120, 190), (40, 150, 130), (240, 190, 40)])
def _draw_cup(p: _Pen, c: RGB, rng: random.Random) -> None:
    p.ring(0.8, 0.52, 0.22, 0.08, c)  # handle, behind the body
    p.rect(0.0, 0.06, 0.76, 1.0, c, fradius=0.12)
    p.ellipse(0.0, 0.0, 0.76, 0.14, _shade(c, 0.82))  # rim seen from slightly above
    p.ellipse(0.04, 0.02, 0.72, 0.12, (110, 65, 35))  # coffee
    band = (40, 90, 170) if sum(c) > 600 else _shade(c, 1.5)
    p.rect(0.0, 0.56, 0.76, 0.66, band)


@_object("umbrella", "household objects", aspect=1.1,
         palette=[(210, 40, 60), (40, 100, 200), (240, 170, 30), (120, 60, 170), (40, 150, 100)])
def _draw_umbrella(p: _Pen, c: RGB, rng: random.Random) -> None:
    p.line([(0.5, 0.0), (0.5, 0.1)], (70, 70, 70), 0.04)
    second = _shade(c, 1.55)
    for k in range(6):  # alternating panels
        p.pieslice(0.0, 0.06, 1.0, 0.94, 180 + 30 * k, 210 + 30 * k, c if k % 2 == 0 else second)
    for k in range(7):  # scalloped hem
        p.erase_circle(k / 6, 0.5, 0.05)
    p.line([(0.5, 0.48), (0.5, 0.86)], (70, 70, 70), 0.035)
    p.arc(0.3, 0.74, 0.52, 0.98, 0, 180, (90, 60, 40), 0.045)


@_object("key", "household objects", aspect=2.4, palette=[(222, 178, 45), (200, 160, 40), (180, 185, 195)])
def _draw_key(p: _Pen, c: RGB, rng: random.Random) -> None:
    k = p.h / p.w  # one height unit in width units, so the bow stays round
    p.circle(0.48 * k, 0.5, 0.48, c)
    p.erase_circle(0.44 * k, 0.5, 0.17)
    p.rect(0.85 * k, 0.4, 1.0, 0.6, c)
    p.rect(1 - 0.62 * k, 0.58, 1 - 0.48 * k, 0.82, c)
    p.rect(1 - 0.38 * k, 0.58, 1 - 0.22 * k, 0.95, c)
    p.rect(1 - 0.16 * k, 0.58, 1.0, 0.76, c)
    p.line([(0.95 * k, 0.47), (1 - 0.1 * k, 0.47)], _shade(c, 0.75), 0.03)


@_object("clock", "household objects", aspect=1.0, palette=[(200, 40, 45), (40, 40, 45), (40, 90, 180), (40, 130, 90)],
         max_rotation=6.0, flip=False)
def _draw_clock(p: _Pen, c: RGB, rng: random.Random) -> None:
    p.ellipse(0.0, 0.0, 1.0, 1.0, c)
    p.ellipse(0.08, 0.08, 0.92, 0.92, (250, 250, 246))
    for k in range(12):
        a = k * math.pi / 6
        r0 = 0.33 if k % 3 else 0.29
        p.line([(0.5 + r0 * math.cos(a), 0.5 + r0 * math.sin(a)), (0.5 + 0.38 * math.cos(a), 0.5 + 0.38 * math.sin(a))],
               (40, 40, 40), 0.03 if k % 3 else 0.045)
    hour, minute = rng.uniform(0, 2 * math.pi), rng.uniform(0, 2 * math.pi)
    p.line([(0.5, 0.5), (0.5 + 0.2 * math.sin(hour), 0.5 - 0.2 * math.cos(hour))], (30, 30, 30), 0.05)
    p.line([(0.5, 0.5), (0.5 + 0.31 * math.sin(minute), 0.5 - 0.31 * math.cos(minute))], (30, 30, 30), 0.03)
    p.circle(0.5, 0.5, 0.035, (200, 40, 40))


# --- shapes
@_object("star", "shapes", aspect=1.05, palette=[(250, 200, 30), (245, 180, 20), (240, 120, 30), (60, 110, 210)],
         flip=False)
def _draw_star(p: _Pen, c: RGB, rng: random.Random) -> None:
    pts = []
    for k in range(10):
        a = -math.pi / 2 + k * math.pi / 5
        r = 1.0 if k % 2 == 0 else 0.4
        pts.append((r * math.cos(a), r * math.sin(a)))
    pts = _normalised(pts)
    p.polygon(pts, c)
    p.polygon([(0.5, 0.553), pts[9], pts[0], pts[1]], _shade(c, 1.25))  # a lit upper point reads as 3-D


@_object("heart", "shapes", aspect=1.1, palette=[(220, 30, 60), (235, 70, 120), (200, 20, 40), (170, 50, 160)],
         flip=False)
def _draw_heart(p: _Pen, c: RGB, rng: random.Random) -> None:
    pts = []
    for k in range(60):
        t = 2 * math.pi * k / 60
        x = 16 * math.sin(t) ** 3
        y = -(13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t))
        pts.append((x, y))
    p.polygon(_normalised(pts), c)
    p.ellipse(0.16, 0.14, 0.32, 0.3, _shade(c, 1.4))


# Drawn in a square box; the crop keeps only the lit part (about 3/4 as wide as high).
@_object("crescent", "shapes", aspect=1.0, palette=[(245, 215, 90), (240, 200, 60), (200, 200, 215)])
def _draw_crescent(p: _Pen, c: RGB, rng: random.Random) -> None:
    p.circle(0.5, 0.5, 0.5, c)
    p.erase_circle(0.8, 0.44, 0.43)


@_object("arrow", "shapes", aspect=2.0, palette=[(40, 110, 210), (220, 50, 50), (40, 160, 80), (240, 150, 30)],
         flip=False)
def _draw_arrow(p: _Pen, c: RGB, rng: random.Random) -> None:
    p.polygon([(0.0, 0.34), (0.56, 0.34), (0.56, 0.0), (1.0, 0.5), (0.56, 1.0), (0.56, 0.66), (0.0, 0.66)], c)
    p.polygon([(0.0, 0.34), (0.56, 0.34), (0.56, 0.44), (0.0, 0.44)], _shade(c, 1.3))


CLASSES: tuple[str, ...] = tuple(o.name for o in _REGISTRY)
CATEGORIES: dict[str, tuple[str, ...]] = {}
for _o in _REGISTRY:
    CATEGORIES.setdefault(_o.category, ())
    CATEGORIES[_o.category] += (_o.name,)
del _o


# ---------------------------------------------------------------------------------------------- one object
def _dilate(alpha: np.ndarray, r: int) -> np.ndarray:
    """Square max filter of radius r (separable; PIL's MaxFilter is an order of magnitude slower)."""
    out = alpha.copy()
    for k in range(1, r + 1):
        out[:, k:] = np.maximum(out[:, k:], alpha[:, :-k])
        out[:, :-k] = np.maximum(out[:, :-k], alpha[:, k:])
    rows = out.copy()
    for k in range(1, r + 1):
        out[k:, :] = np.maximum(out[k:, :], rows[:-k, :])
        out[:-k, :] = np.maximum(out[:-k, :], rows[k:, :])
    return out


# Pixels fainter than this after anti-aliasing are invisible; cutting them keeps boxes tight.
_ALPHA_CUT = [0] * 12 + list(range(12, 256))


def _render_object(obj: _ObjectClass, width: float, height: float, rng: random.Random) -> Image.Image:
    """The object as an RGBA image cropped to its drawn pixels (so its size is its tight box)."""
    s = _SUPERSAMPLE
    w, h = max(4, round(width * s)), max(4, round(height * s))
    outline = max(2, min(4, round(0.03 * min(w, h))))
    pad = outline + 1
    layer = Image.new("RGBA", (w + 2 * pad, h + 2 * pad), (0, 0, 0, 0))
    pen = _Pen(ImageDraw.Draw(layer), (pad, pad, pad + w - 1, pad + h - 1))
    colour = _jitter(rng.choice(obj.palette), rng)
    obj.draw(pen, colour, rng)

    # A dark silhouette outline separates the object from any background and from its neighbours.
    base = Image.new("RGBA", layer.size, _OUTLINE_RGB)
    base.putalpha(Image.fromarray(_dilate(np.asarray(layer.getchannel("A")), outline), "L"))
    layer = Image.alpha_composite(base, layer)
    # Plain 2x2 averaging (no premultiplied alpha) darkens only the edge of the outline, which is dark.
    layer = layer.reduce(s)

    if obj.flip and rng.random() < 0.5:
        layer = layer.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    # Half of the objects stand upright; the others lean a little, which also varies box shapes.
    angle = rng.uniform(-obj.max_rotation, obj.max_rotation) if rng.random() < 0.5 else 0.0
    if obj.name == "arrow":
        angle += 90 * rng.randrange(4)  # arrows point every way
    if abs(angle) > 1.0:
        layer = layer.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)
    alpha = layer.getchannel("A").point(_ALPHA_CUT)
    layer.putalpha(alpha)
    return layer.crop(alpha.getbbox())


def _fit_object(obj: _ObjectClass, frac: float, image_size: int, rng: random.Random,
                lo: float, hi: float) -> Image.Image | None:
    """Render `obj` with a box of about `frac` of the image area, kept within [lo, hi]; None if it cannot be."""
    area = image_size * image_size
    desired = min(max(frac, lo * 1.05), hi * 0.95)
    target = desired
    limit = image_size - 4
    for _ in range(5):
        w = math.sqrt(target * area * obj.aspect)
        h = w / obj.aspect
        if max(w, h) > 0.94 * limit:
            w, h = w * 0.94 * limit / max(w, h), h * 0.94 * limit / max(w, h)
        img = _render_object(obj, w, h, rng)
        got = img.width * img.height / area
        if lo <= got <= hi and img.width <= limit and img.height <= limit:
            return img
        # Rotation, the silhouette and the crop change the box; aim again from what was measured.
        scale = desired / got
        if img.width > limit or img.height > limit:
            scale = min(scale, (limit / max(img.width, img.height)) ** 2 * 0.95)
        target *= min(4.0, max(0.25, scale))
    return None


# ---------------------------------------------------------------------------------------------- scenes
def _pastel(rng: random.Random, s=(0.05, 0.28), v=(0.8, 0.97)) -> RGB:
    r, g, b = colorsys.hsv_to_rgb(rng.random(), rng.uniform(*s), rng.uniform(*v))
    return (round(r * 255), round(g * 255), round(b * 255))


def _background(size: int, rng: random.Random) -> Image.Image:
    kind = rng.choices(("solid", "gradient", "tabletop", "texture"), weights=(0.25, 0.3, 0.25, 0.2))[0]
    c1 = _pastel(rng)
    if kind == "solid":
        return Image.new("RGB", (size, size), c1)
    # Smooth backgrounds are computed at a quarter of the resolution and enlarged: 16 times less work.
    n = max(8, size // 4)
    ramp = np.linspace(0.0, 1.0, n, dtype=np.float32)
    xx, yy = ramp[None, :, None], ramp[:, None, None]
    base = np.array(c1, dtype=np.float32)
    if kind == "gradient":
        c2 = np.array(_pastel(rng), dtype=np.float32)
        a = rng.uniform(0, 2 * math.pi)
        ca, sa = math.cos(a), math.sin(a)
        t = (xx * ca + yy * sa - min(0.0, ca) - min(0.0, sa)) / (abs(ca) + abs(sa))
        arr = base + (c2 - base) * t
    elif kind == "tabletop":
        table = np.array(_pastel(rng, s=(0.15, 0.4), v=(0.62, 0.85)), dtype=np.float32)
        horizon = rng.uniform(0.5, 0.75)
        # Light falls off towards the bottom; the wall brightens slightly towards the table.
        column = np.where(yy > horizon, table * (1 - 0.12 * yy), base * (0.94 + 0.06 * yy))
        arr = np.broadcast_to(column, (n, n, 3))
    else:
        # Faint stripes or checks: texture that never reads as an object.
        tile = rng.randint(16, 40) / size * n
        cells = (np.arange(n) // tile).astype(np.int32)
        pattern = (cells[None, :] + cells[:, None] * rng.randint(0, 1)) % 2
        arr = base * (1 - 0.06 * pattern[..., None])
    small = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    return small.resize((size, size), Image.Resampling.BILINEAR)


def _overlap_ok(box, placed) -> bool:
    x, y, w, h = box
    for px, py, pw, ph in placed:
        iw = min(x + w, px + pw) - max(x, px)
        ih = min(y + h, py + ph) - max(y, py)
        if iw > 0 and ih > 0 and iw * ih > _MAX_OVERLAP * min(w * h, pw * ph):
            return False
    return True


def _place(size: tuple[int, int], image_size: int, placed, rng: random.Random):
    w, h = size
    margin = 2 if max(w, h) + 4 <= image_size else 0
    hi_x, hi_y = image_size - w - margin, image_size - h - margin
    if hi_x < margin or hi_y < margin:
        return None
    for _ in range(_PLACEMENT_TRIES):
        box = (rng.randint(margin, hi_x), rng.randint(margin, hi_y), w, h)
        if _overlap_ok(box, placed):
            return box
    return None


@dataclass(frozen=True)
class _Plan:
    """What one scene holds, decided before drawing: (class position, count) pairs and a tiny extra."""

    counts: tuple[tuple[int, int], ...]
    small_u: float  # compared with small_object_rate, drawn always so the rate does not shift the stream
    small_class: int


def _plan_world(num_images: int, seed: int) -> list[_Plan]:
    rng = random.Random(f"mimic-world-plan:v{WORLD_VERSION}:{seed}")
    n_cls = len(_REGISTRY)
    deck: list[int] = []
    plans = []
    for _ in range(num_images):
        k = rng.choices(*_CLASSES_PER_SCENE)[0]
        chosen: list[int] = []
        # Dealing from a shuffled deck (refilled when spent) balances class frequencies exactly,
        # which independent draws would not in a world of a few dozen images.
        while len(chosen) < k:
            pick = next((j for j, c in enumerate(deck) if c not in chosen), None)
            if pick is None:
                fresh = list(range(n_cls))
                rng.shuffle(fresh)
                deck.extend(fresh)
                continue
            chosen.append(deck.pop(pick))
        while True:
            counts = [rng.choices(*_COUNT_WEIGHTS)[0] for _ in chosen]
            if sum(counts) <= _MAX_OBJECTS:
                break
        small_u, small_class = rng.random(), rng.randrange(n_cls)
        if rng.random() < 0.5:  # a tiny extra of a class already in the scene makes it ineligible for it
            small_class = rng.choice(chosen)
        plans.append(_Plan(tuple(zip(chosen, counts, strict=True)), small_u, small_class))
    return plans


def _render_scene(plan: _Plan, index: int, seed: int, image_size: int, small_object_rate: float):
    """Draw one scene; returns the image and its boxes as (class position, x, y, w, h)."""
    rng = random.Random(f"mimic-world-image:v{WORLD_VERSION}:{seed}:{index}")
    scene = _background(image_size, rng)
    n = sum(c for _, c in plan.counts)
    # Few objects may be large; many must share the image. Sizes vary within those bounds.
    hi = max(_MIN_TARGET_FRAC + 0.01, min(0.36, 0.5 / n))
    jobs = [(cls, rng.uniform(_MIN_TARGET_FRAC, hi)) for cls, count in plan.counts for _ in range(count)]
    jobs.sort(key=lambda j: -j[1])  # large objects first: small ones fit in the gaps
    placed: list[tuple[int, int, int, int]] = []
    boxes = []
    dropped = 0

    def put(cls: int, frac: float, lo: float, top: float) -> bool:
        obj = _REGISTRY[cls]
        for _ in range(_SHRINK_STEPS):
            img = _fit_object(obj, frac, image_size, rng, lo, top)
            if img is None:
                return False
            box = _place(img.size, image_size, placed, rng)
            if box is not None:
                placed.append(box)
                scene.paste(img, box[:2], img)
                boxes.append((cls, *box))
                return True
            frac = max(lo * 1.15, frac * 0.8)
        return False

    for cls, frac in jobs:
        dropped += not put(cls, frac, _MIN_OK_FRAC, max(hi * 1.4, _MIN_TARGET_FRAC * 1.5))
    if plan.small_u < small_object_rate:
        lo, top = _SMALL_FRAC
        dropped += not put(plan.small_class, rng.uniform(lo, top), lo * 0.5, _SMALL_MAX_FRAC)
    if dropped:
        logger.debug("image %d: %d planned objects did not fit and were left out", index, dropped)
    return scene, boxes


# ---------------------------------------------------------------------------------------------- the world
@dataclass(frozen=True)
class WorldPaths:
    """Where a rendered world lies: `annotations.json` (COCO instances) and `images/*.jpg` under `root`."""

    root: Path
    annotations: Path
    images: Path

    @classmethod
    def at(cls, root: str | os.PathLike) -> WorldPaths:
        root = Path(root)
        return cls(root=root, annotations=root / "annotations.json", images=root / "images")


def _world_args(num_images: int, seed: int, image_size: int, small_object_rate: float) -> dict:
    return {
        "world_version": WORLD_VERSION,
        "num_images": num_images,
        "seed": seed,
        "image_size": image_size,
        "small_object_rate": small_object_rate,
    }


def _file_name(image_id: int) -> str:
    return f"world_{image_id:06d}.jpg"


def _existing_world(paths: WorldPaths) -> dict | None:
    """The arguments recorded by a complete world at `paths`, or None when it is not one."""
    try:
        info = json.loads(paths.annotations.read_text())["info"]["mimic_world"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    n = info.get("num_images") if isinstance(info, dict) else None
    if not isinstance(n, int) or not all((paths.images / _file_name(i)).is_file() for i in range(1, n + 1)):
        return None
    return info


def _check_existing(paths: WorldPaths, args: dict) -> bool:
    """True when `paths.root` already holds this world; raise when it holds anything else."""
    root = paths.root
    if not root.exists():
        return False
    if root.is_dir() and not any(root.iterdir()):
        return False
    found = _existing_world(paths)
    if found == args:
        return True
    what = (
        f"a synthetic world made with {found}" if found is not None else "something that is not a complete synthetic world"
    )
    raise ConfigError(
        f"{root} already exists and holds {what}, not the requested world {args}; "
        "choose another output folder or delete this one"
    )


def _annotations_json(plans_boxes, args: dict, image_size: int) -> bytes:
    categories = [
        {"id": k + 1, "name": o.name, "supercategory": o.category} for k, o in enumerate(_REGISTRY)
    ]
    images, annotations = [], []
    for image_id, boxes in plans_boxes:
        images.append(
            {"id": image_id, "file_name": _file_name(image_id), "width": image_size, "height": image_size, "license": 1}
        )
        for cls, x, y, w, h in boxes:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": cls + 1,
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                    "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]],
                }
            )
    data = {
        "info": {
            "description": "MIMIC synthetic world: rendered scenes of simple objects (mimic-vlm)",
            "version": str(WORLD_VERSION),
            "contributor": "mimic-vlm",
            "url": "",
            "mimic_world": args,
        },
        "licenses": [{"id": 1, "name": "CC0 1.0 (rendered by mimic-vlm)", "url": ""}],
        "categories": categories,
        "images": images,
        "annotations": annotations,
    }
    return (json.dumps(data, sort_keys=True, separators=(",", ":")) + "\n").encode()


def render_world(
    out_dir: str | os.PathLike,
    *,
    num_images: int = DEFAULT_WORLD_IMAGES,
    seed: int = 0,
    image_size: int = 320,
    show_progress: bool = True,
    small_object_rate: float = 0.0,
) -> WorldPaths:
    """Render the synthetic world into `out_dir` (images/*.jpg and annotations.json, COCO format).

    Args:
        out_dir: output folder; it must not exist, be empty, or already hold this same world (then
            nothing is rendered).
        num_images: scenes to render.
        seed: the same arguments give byte-identical files.
        image_size: width and height in pixels.
        show_progress: show a tqdm progress bar.
        small_object_rate: chance per scene of one extra tiny object (box under 5% of the image), to
            exercise the eligibility rule; 0 keeps every box at 5% or more.

    Raises:
        ConfigError: a bad argument, or `out_dir` holds something else.
    """
    if isinstance(num_images, bool) or not isinstance(num_images, int) or num_images < 1:
        raise ConfigError(f"num_images must be a positive integer, got {num_images!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"seed must be an integer, got {seed!r}")
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 64:
        raise ConfigError(f"image_size must be an integer of at least 64 pixels, got {image_size!r}")
    if not 0.0 <= float(small_object_rate) <= 1.0:
        raise ConfigError(f"small_object_rate must lie in [0, 1], got {small_object_rate!r}")
    small_object_rate = float(small_object_rate)
    paths = WorldPaths.at(out_dir)
    args = _world_args(num_images, seed, image_size, small_object_rate)
    if _check_existing(paths, args):
        return paths

    from tqdm.auto import tqdm

    paths.root.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_temp_dir(paths.root)  # 0777 less the umask, like any folder: the world is ordinary data
    try:
        (tmp / "images").mkdir()
        plans = _plan_world(num_images, seed)
        rendered = []
        for k in tqdm(range(num_images), desc="rendering synthetic world", unit="img", disable=not show_progress):
            scene, boxes = _render_scene(plans[k], k, seed, image_size, small_object_rate)
            scene.save(tmp / "images" / _file_name(k + 1), format="JPEG", quality=_JPEG_QUALITY)
            rendered.append((k + 1, boxes))
        # annotations.json is written last: inside the final folder it marks the world complete.
        (tmp / "annotations.json").write_bytes(_annotations_json(rendered, args, image_size))
        if paths.root.is_dir() and not any(paths.root.iterdir()):
            paths.root.rmdir()
        try:
            os.rename(tmp, paths.root)
        except OSError:
            # Someone else finished first (a concurrent render of the same world): keep theirs.
            if _existing_world(paths) != args:
                raise ConfigError(f"could not move the rendered world into {paths.root}: it appeared meanwhile") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return paths


# ---------------------------------------------------------------------------------------------- reading
def default_cache_dir() -> Path:
    """`$XDG_CACHE_HOME/mimic`, else `~/.cache/mimic`."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mimic"


def default_world_dir(cache_dir: str | os.PathLike | None = None, *, num_images: int = DEFAULT_WORLD_IMAGES,
                      seed: int = 0) -> Path:
    """Where the cached world of these arguments lives: `<cache>/world-v{WORLD_VERSION}-n{N}-s{seed}`."""
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return root / f"world-v{WORLD_VERSION}-n{num_images}-s{seed}"


def read_synthetic(
    annotations: str | os.PathLike | None = None,
    images_dir: str | os.PathLike | None = None,
    *,
    check_images: bool = False,
    cache_dir: str | os.PathLike | None = None,
) -> AnnotationIndex:
    """Read a rendered world into an `AnnotationIndex` (source "synthetic").

    Args:
        annotations: the world's `annotations.json` (or its folder). None renders the default world
            (DEFAULT_WORLD_IMAGES scenes, seed 0) into the cache once and reads it.
        images_dir: the images folder; default: `images` next to the annotations file.
        check_images: verify now that every image file exists.
        cache_dir: cache folder for the default world (default `$XDG_CACHE_HOME/mimic` or `~/.cache/mimic`).
    """
    from mimic.builders.sources.coco import read_coco

    if annotations is None:
        annotations = render_world(default_world_dir(cache_dir)).annotations
    path = Path(annotations)
    if path.is_dir():
        path = WorldPaths.at(path).annotations
    if images_dir is None:
        images_dir = path.parent / "images"
    return read_coco(path, images_dir, source="synthetic", check_images=check_images)
