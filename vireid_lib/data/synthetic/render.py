"""Rendering core of the synthetic visible-infrared person generator.

One :class:`Identity` holds everything that makes a person recognisable. :func:`render` draws
that person in a :class:`Pose` for one camera (:class:`Scene`), either in colour (visible) or
as a heat image (infrared), and returns the image together with the COCO-17 keypoints the
figure was drawn from.

What links the two modalities is shape, never colour: body proportions, sleeve length,
shorts/trousers/skirt, a coat silhouette, a backpack or a shoulder bag (and its side), a hat,
hair length and a garment pattern. The pattern is drawn in a second colour in visible and
as a second heat level in infrared, so its geometry is shared while its intensity is not.
In infrared, exposed skin is hottest, garments sit at an identity-specific heat set by their
thickness (independent of their colour), hair, hats, bags and shoes are cool, and the
background is cool with a soft per-camera gradient.

The figure is built as a 3-D stick skeleton (body units: the standing person is 1 tall;
``X`` to the person's left, ``Y`` up, ``Z`` forward), posed by a walking cycle and projected
orthographically for one of four facing directions, so "left" and "right" are true mirror
images and far-side limbs are drawn first and scored lower.

Speed: a 64x128 image costs about 0.6 ms on a slow 2-core machine; backgrounds and noise
fields are built once per (camera, modality, size) and cached, and everything per image is
about 25 PIL polygon fills plus a dozen vectorised numpy operations.
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from ..records import INFRARED, VISIBLE
from ..skeletons import COCO17_NAMES

__all__ = [
    "COCO17_LIMBS",
    "COCO17_NAMES",
    "FACINGS",
    "Identity",
    "Pose",
    "Scene",
    "render",
    "sample_identity",
    "sample_pose",
    "walk",
]

# COCO17_NAMES (the standard COCO-17 keypoint order) comes from the skeleton store, so the
# renderer and the files it feeds can never disagree on it.
COCO17_LIMBS: tuple[tuple[int, int], ...] = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8),
    (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)
FACINGS: tuple[str, ...] = ("left", "right", "front", "back")


RGB = tuple[int, int, int]

# Image-space axes of the person's left (L) and forward (F) directions, as (x, depth) pairs with
# depth growing towards the camera. Facing the camera, the person's left is on the image's
# right; walking to the image's right, the person's left side is the far side.
_AXES: dict[str, tuple[float, float, float, float]] = {
    #         Lx    Lz    Fx    Fz
    "front": (1.0, 0.0, 0.0, 1.0),
    "back": (-1.0, 0.0, 0.0, -1.0),
    "right": (0.0, -1.0, 1.0, 0.0),
    "left": (0.0, 1.0, -1.0, 0.0),
}

SLEEVES = ("short", "long")
LOWERS = ("trousers", "shorts", "skirt")
PATTERNS = ("plain", "stripes", "band", "split")
HAIRS = ("short", "medium", "long")
HATS = ("none", "cap", "beanie")
BAGS = ("none", "backpack", "shoulder")
SIDES = ("left", "right")


# -- identities --------------------------------------------------------------------------
@dataclass(frozen=True)
class Identity:
    """Every appearance attribute of one person, shared by both modalities.

    Lengths are fractions of the person's standing height. ``*_rgb`` colours are used only in
    visible images and ``*_heat`` levels (0 cold .. 1 hot) only in infrared ones; all other
    fields are shape and are drawn identically in both.
    """

    # body shape
    shoulder_width: float  # distance between the shoulder joints
    hip_width: float  # distance between the hip joints
    leg_length: float  # height of the hip joints above the ground
    head_size: float  # head radius
    girth: float  # limb and torso thickness multiplier
    gait: float  # walking amplitude multiplier (stride, arm swing)
    # garments
    sleeve: str  # "short" | "long"
    lower: str  # "trousers" | "shorts" | "skirt"
    lower_length: float  # shorts: fraction of the thigh covered; skirt: length below the hips
    coat: bool  # a long coat over the top, hem below the hips
    coat_length: float  # coat hem below the hip joints
    pattern: str  # "plain" | "stripes" | "band" | "split" on the top garment
    pattern_count: int  # number of stripes (stripes only)
    band_position: float  # chest band centre, 0 shoulders .. 1 hips (band only)
    # hair, hat, bag
    hair: str  # "short" | "medium" | "long"
    hat: str  # "none" | "cap" | "beanie"
    bag: str  # "none" | "backpack" | "shoulder"
    bag_side: str  # "left" | "right": the person's side the shoulder bag hangs on
    bag_size: float  # multiplier on the bag's nominal size
    # visible colours
    skin_rgb: RGB
    hair_rgb: RGB
    top_rgb: RGB
    pattern_rgb: RGB
    lower_rgb: RGB
    shoe_rgb: RGB
    hat_rgb: RGB
    bag_rgb: RGB
    # infrared heat levels
    skin_heat: float
    hair_heat: float
    top_heat: float
    pattern_heat: float
    lower_heat: float
    shoe_heat: float
    hat_heat: float
    bag_heat: float


def _hsv(h: float, s: float, v: float) -> RGB:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0))
    return (int(r * 255 + 0.5), int(g * 255 + 0.5), int(b * 255 + 0.5))


def _luma(c: RGB) -> float:
    return (0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]) / 255.0


def _cloth_rgb(rng: np.random.Generator) -> RGB:
    # Real pedestrians wear many blacks, greys, whites and navies; pure random hues alone
    # would make colour an unrealistically easy cue.
    if rng.random() < 0.4:
        return _hsv(rng.uniform(0.55, 0.7), rng.uniform(0.0, 0.25), rng.uniform(0.08, 0.95))
    return _hsv(rng.random(), rng.uniform(0.3, 0.9), rng.uniform(0.25, 0.95))


def _contrasting_rgb(rng: np.random.Generator, base: RGB) -> RGB:
    # A pattern must be visible in colour, so redraw until it differs from the base in
    # brightness or clearly in colour; bounded so that sampling always terminates.
    colour = _cloth_rgb(rng)
    for _ in range(20):
        distance = sum(abs(a - b) for a, b in zip(colour, base)) / 765.0
        if abs(_luma(colour) - _luma(base)) > 0.25 or distance > 0.35:
            break
        colour = _cloth_rgb(rng)
    else:
        colour = (255, 255, 255) if _luma(base) < 0.5 else (20, 20, 25)
    return colour


_SKIN_TONES = np.array([(250, 214, 186), (226, 178, 140), (190, 136, 96), (140, 94, 62), (92, 60, 42)], float)
_HAIR_COLOURS = ((22, 18, 18), (52, 36, 28), (96, 64, 40), (150, 110, 66), (206, 176, 118), (140, 140, 140), (120, 56, 30))


def _jitter_rgb(rng: np.random.Generator, colour: np.ndarray | tuple, amount: float) -> RGB:
    c = np.clip(np.asarray(colour, float) + rng.uniform(-amount, amount, 3), 0, 255)
    return (int(c[0]), int(c[1]), int(c[2]))


def sample_identity(rng: np.random.Generator) -> Identity:
    """Draw one person. Every draw comes from ``rng``, so a seeded generator gives the same crowd."""
    tone = rng.uniform(0, len(_SKIN_TONES) - 1)
    low = int(tone)
    skin = _SKIN_TONES[low] + (tone - low) * (_SKIN_TONES[min(low + 1, len(_SKIN_TONES) - 1)] - _SKIN_TONES[low])
    build = rng.uniform(0.88, 1.15)
    coat = bool(rng.random() < 0.2)
    sleeve = "long" if coat else SLEEVES[int(rng.integers(2))]
    lower = LOWERS[int(rng.choice(3, p=[0.55, 0.25, 0.2]))]
    pattern = PATTERNS[int(rng.choice(4, p=[0.3, 0.3, 0.2, 0.2]))]
    hat = HATS[int(rng.choice(3, p=[0.7, 0.18, 0.12]))]
    bag = BAGS[int(rng.choice(3, p=[0.4, 0.3, 0.3]))]
    top_rgb = _cloth_rgb(rng)
    # Heat of a garment follows its thickness (thin shirt warm, padded coat cool) and is drawn
    # independently of its colour, so colour never predicts infrared intensity.
    thickness = rng.uniform(0.0, 1.0)
    top_heat = 0.42 - 0.1 * thickness if coat else 0.74 - 0.2 * thickness
    pattern_heat = top_heat + (1.0 if rng.random() < 0.5 else -1.0) * rng.uniform(0.1, 0.2)
    if not 0.3 <= pattern_heat <= 0.78:
        # Flip the modulation rather than clip it, so the pattern never vanishes in infrared.
        pattern_heat = 2 * top_heat - pattern_heat
    return Identity(
        shoulder_width=float(rng.uniform(0.2, 0.25) * build),
        hip_width=float(rng.uniform(0.13, 0.16) * build),
        leg_length=float(rng.uniform(0.46, 0.53)),
        head_size=float(rng.uniform(0.058, 0.07)),
        girth=float(build * rng.uniform(0.92, 1.08)),
        gait=float(rng.uniform(0.75, 1.25)),
        sleeve=sleeve,
        lower=lower,
        lower_length=float(rng.uniform(0.35, 0.7) if lower == "shorts" else rng.uniform(0.12, 0.24)),
        coat=coat,
        coat_length=float(rng.uniform(0.12, 0.26)),
        pattern=pattern,
        pattern_count=int(rng.integers(2, 5)) if pattern == "stripes" else 1,
        band_position=float(rng.uniform(0.25, 0.6)),
        hair=HAIRS[int(rng.choice(3, p=[0.45, 0.25, 0.3]))],
        hat=hat,
        bag=bag,
        bag_side=SIDES[int(rng.integers(2))],
        bag_size=float(rng.uniform(0.85, 1.2)),
        skin_rgb=_jitter_rgb(rng, skin, 8),
        hair_rgb=_jitter_rgb(rng, _HAIR_COLOURS[int(rng.integers(len(_HAIR_COLOURS)))], 10),
        top_rgb=top_rgb,
        pattern_rgb=_contrasting_rgb(rng, top_rgb),
        lower_rgb=_cloth_rgb(rng),
        shoe_rgb=_hsv(rng.random(), rng.uniform(0, 0.4), rng.uniform(0.05, 0.85)),
        hat_rgb=_cloth_rgb(rng),
        bag_rgb=_cloth_rgb(rng),
        skin_heat=float(rng.uniform(0.88, 0.98)),
        hair_heat=float(rng.uniform(0.3, 0.46)),
        top_heat=float(top_heat),
        pattern_heat=float(pattern_heat),
        lower_heat=float(rng.uniform(0.5, 0.68)),
        shoe_heat=float(rng.uniform(0.3, 0.44)),
        hat_heat=float(rng.uniform(0.28, 0.44)),
        bag_heat=float(rng.uniform(0.24, 0.42)),
    )


# -- poses -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Pose:
    """Where and how a person stands in the image (all positions are fractions of the image)."""

    phase: float  # walking-cycle phase in [0, 1)
    facing: str  # "left" | "right" | "front" | "back"
    scale: float  # standing height as a fraction of the image height
    cx: float  # horizontal centre as a fraction of the width
    ground: float  # y of the feet as a fraction of the height


def sample_pose(rng: np.random.Generator) -> Pose:
    """A random still pose, as found in detector crops of image datasets."""
    scale = float(rng.uniform(0.72, 0.93))
    return Pose(
        phase=float(rng.random()),
        facing=FACINGS[int(rng.integers(4))],
        scale=scale,
        cx=float(rng.uniform(0.42, 0.58)),
        ground=float(rng.uniform(max(0.92, scale + 0.04), 0.99)),
    )


def walk(rng: np.random.Generator, n_frames: int) -> list[Pose]:
    """A tracklet of ``n_frames`` poses of one person walking through a tracker's crops.

    The tracker keeps the person roughly centred, so the crop only drifts slowly in the
    walking direction (sideways walkers) and the scale changes slightly (walkers towards or
    away from the camera grow or shrink); the whole drift is bounded so the person stays in
    frame however long the tracklet is.
    """
    if n_frames < 0:
        raise ValueError(f"n_frames={n_frames} must be >= 0.")
    first = sample_pose(rng)
    step = rng.uniform(0.06, 0.12)
    direction = {"right": 1.0, "left": -1.0}.get(first.facing, 0.0)
    span = max(n_frames - 1, 1)
    if direction:
        drift = direction * min(rng.uniform(0.004, 0.012), 0.16 / span)
    else:
        drift = rng.uniform(-0.003, 0.003) * min(1.0, 20.0 / span)
    growth = {"front": 1.0, "back": -1.0}.get(first.facing, rng.uniform(-0.3, 0.3))
    # Total scale change stays within about +-8% over the tracklet.
    scale_rate = growth * min(rng.uniform(0.002, 0.006), 0.08 / span)
    cx0 = 0.5 - drift * (n_frames - 1) / 2 + rng.uniform(-0.04, 0.04)
    scale0 = first.scale * (1 - scale_rate * (n_frames - 1) / 2)
    poses = []
    for i in range(n_frames):
        scale = float(np.clip(scale0 * (1 + scale_rate * i) + rng.normal(0, 0.004), 0.68, 0.95))
        ground = float(np.clip(first.ground + rng.normal(0, 0.004), scale + 0.02, 0.995))
        phase = float((first.phase + step * i + rng.normal(0, 0.006)) % 1.0)
        poses.append(Pose(
            phase=phase if phase < 1.0 else 0.0,  # -1e-17 % 1.0 rounds to 1.0
            facing=first.facing,
            scale=scale,
            cx=float(np.clip(cx0 + drift * i + rng.normal(0, 0.005), 0.38, 0.62)),
            ground=ground,
        ))
    return poses


# -- scenes ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Scene:
    """One camera of one modality; its background look is a fixed function of both."""

    camera: int
    modality: int  # 0 = visible, 1 = infrared


def _blur_passes(height: int) -> int:
    """How many [1, 2, 1] blur passes an infrared image of this height gets."""
    return 1 if height <= 160 else 2


@lru_cache(maxsize=64)
def _panorama(camera: int, modality: int, width: int, height: int) -> Image.Image:
    """A background twice as wide as the image; each render crops it at a random offset.

    The look (wall/floor colours, structures, heat gradient) depends only on the camera and
    modality, via a generator seeded from them, so a camera keeps its style across images
    while crops, clutter and lighting still vary per image. Infrared panoramas carry a
    margin of the blur's reach on every side, so the blur never has to treat borders. The
    cached image is only ever cropped (which copies), never drawn on.
    """
    g = np.random.default_rng([0x5CE7E, camera, modality])
    pad = _blur_passes(height) if modality == INFRARED else 0
    w, h = 2 * width + 2 * pad, height + 2 * pad
    ys = (np.arange(h, dtype=np.float32) / h)[:, None]
    xs = (np.arange(w, dtype=np.float32) / w)[None, :]
    horizon = int(h * g.uniform(0.55, 0.85))
    if modality == INFRARED:
        base = g.uniform(0.12, 0.3)
        field = base + g.uniform(-0.12, 0.12) * (ys - 0.5) + g.uniform(-0.06, 0.06) * (xs - 0.5)
        field = np.broadcast_to(field, (h, w)).copy()
        field[horizon:] += g.uniform(-0.05, 0.07)
        for _ in range(int(g.integers(1, 4))):
            cy, cx, sigma = g.uniform(0, 1), g.uniform(0, 1), g.uniform(0.1, 0.3)
            field += g.uniform(-0.06, 0.1) * np.exp(-((ys - cy) ** 2 + ((xs - cx) * w / h) ** 2) / (2 * sigma**2))
        for _ in range(int(g.integers(1, 5))):
            x0 = int(g.integers(0, w))
            field[:horizon, x0 : x0 + int(g.uniform(0.05, 0.3) * w)] += g.uniform(-0.04, 0.04)
        pixels = np.clip(field * 255, 0, 255).astype(np.uint8)
        return Image.fromarray(pixels, "L").filter(ImageFilter.GaussianBlur(max(1.0, h / 64)))
    hue = g.random()
    wall = np.array(_hsv(hue, g.uniform(0.03, 0.4), g.uniform(0.35, 0.9)), np.float32)
    floor = np.array(_hsv(hue + g.uniform(-0.3, 0.3), g.uniform(0.0, 0.35), g.uniform(0.2, 0.7)), np.float32)
    field = np.empty((h, w, 3), np.float32)
    field[:horizon] = wall
    field[horizon:] = floor
    for _ in range(int(g.integers(2, 7))):
        # doors, pillars, windows and shop fronts on the wall
        x0, bw = int(g.integers(0, w)), int(g.uniform(0.05, 0.45) * w)
        y0 = int(g.uniform(0.0, 0.5) * horizon)
        colour = np.clip(wall * g.uniform(0.5, 1.4) + g.uniform(-40, 40, 3), 0, 255)
        field[y0:horizon, x0 : x0 + bw] = colour
    for _ in range(int(g.integers(0, 3))):
        y0 = int(g.uniform(horizon, h))
        field[y0 : y0 + max(1, h // 64)] *= g.uniform(0.7, 1.2)
    light = 1 + g.uniform(-0.35, 0.35) * (ys - 0.5) + g.uniform(-0.2, 0.2) * (xs - 0.5)
    pixels = np.clip(field * light[..., None], 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGB").filter(ImageFilter.GaussianBlur(max(0.7, h / 128)))


@dataclass(frozen=True)
class _Grid:
    """Per-size constants of the photometric stage (read-only arrays)."""

    xs: np.ndarray  # (1, width) horizontal position in [-0.5, 0.5]
    ys: np.ndarray  # (height, 1) vertical position in [-0.5, 0.5]
    xs3: np.ndarray  # (3 * width,) horizontal position of each interleaved RGB sample
    channel: np.ndarray  # (3 * width,) channel index of each interleaved RGB sample
    noise3: np.ndarray  # (levels, 2 * height, 6 * width) Gaussian noise for RGB rows
    noise1: np.ndarray  # (levels, 2 * height, 2 * width) Gaussian noise for gray images


# Sensor noise standard deviations (grey levels); a render picks one level at random.
_NOISE_VISIBLE = (1.5, 3.0, 4.5, 6.0)
_NOISE_INFRARED = (1.5, 2.5, 3.5, 5.0)


@lru_cache(maxsize=16)
def _grid(width: int, height: int) -> _Grid:
    # Fresh Gaussian noise for every pixel would cost more than the rest of a render at
    # 64x128; random crops of larger fixed fields, one per noise level (so no per-image
    # scaling pass), are just as good as sensor noise for training purposes.
    g = np.random.default_rng([0x9015E, width, height])
    xs = np.linspace(-0.5, 0.5, width, dtype=np.float32)
    grid = _Grid(
        xs=xs[None, :],
        ys=np.linspace(-0.5, 0.5, height, dtype=np.float32)[:, None],
        xs3=np.repeat(xs, 3),
        channel=np.tile(np.arange(3), width),
        noise3=g.standard_normal((4, 2 * height, 6 * width), dtype=np.float32)
        * np.array(_NOISE_VISIBLE, np.float32)[:, None, None],
        noise1=g.standard_normal((4, 2 * height, 2 * width), dtype=np.float32)
        * np.array(_NOISE_INFRARED, np.float32)[:, None, None],
    )
    for array in (grid.xs, grid.ys, grid.xs3, grid.channel, grid.noise3, grid.noise1):
        array.flags.writeable = False
    return grid


# -- skeleton ----------------------------------------------------------------------------
_ANKLE_HEIGHT = 0.045
_TORSO_DEPTH = 0.13
_UPPER_ARM = 0.175
_FOREARM = 0.155


@dataclass(frozen=True)
class _Body:
    """A posed 3-D skeleton in body units: COCO-17 joints plus the extra points drawing needs."""

    joints: tuple[tuple[float, float, float], ...]
    head: tuple[float, float, float]  # head centre
    toes: tuple[tuple[float, float, float], tuple[float, float, float]]  # left, right
    shoulder_y: float
    hip_y: float


def _pose_body(ident: Identity, phase: float) -> _Body:
    theta = 2 * math.pi * phase
    s, c = math.sin(theta), math.cos(theta)
    amp = ident.gait
    r = ident.head_size
    head_y = 1.0 - 1.1 * r
    shoulder_y = head_y - 1.1 * r - 0.04
    hip_y = ident.leg_length
    leg = hip_y - _ANKLE_HEIGHT
    thigh, shin = 0.52 * leg, 0.48 * leg
    # Legs swing in antiphase; a knee flexes most while its leg swings forward (cos > 0 for
    # the left leg), and the arms swing opposite to the leg on the same side.
    legs = []
    for side, swing, forward in ((1.0, s, c), (-1.0, -s, -c)):
        a = 0.42 * amp * swing
        k = 0.1 + 0.95 * amp * max(0.0, forward) ** 2
        x = side * ident.hip_width / 2
        hip = (x, hip_y, 0.0)
        knee = (x, hip_y - thigh * math.cos(a), thigh * math.sin(a))
        ankle = (x, knee[1] - shin * math.cos(a - k), knee[2] + shin * math.sin(a - k))
        toe = (x, ankle[1] - 0.6 * _ANKLE_HEIGHT, ankle[2] + 0.065)
        legs.append((hip, knee, ankle, toe))
    # Feet stay on the ground: the figure drops while the legs are spread, which is the
    # vertical bob of walking.
    drop = min(legs[0][2][1], legs[1][2][1]) - _ANKLE_HEIGHT
    arms = []
    for side, swing in ((1.0, -s), (-1.0, s)):
        b = 0.38 * amp * swing
        e = 0.2 + 0.4 * amp * max(0.0, swing)
        x = side * ident.shoulder_width / 2
        shoulder = (x, shoulder_y, 0.012)
        elbow = (x + side * 0.012, shoulder_y - _UPPER_ARM * math.cos(b), 0.012 + _UPPER_ARM * math.sin(b))
        wrist = (x + side * 0.02, elbow[1] - _FOREARM * math.cos(b + e), elbow[2] + _FOREARM * math.sin(b + e))
        arms.append((shoulder, elbow, wrist))
    head = (0.0, head_y, 0.02)
    face = (
        # The head disc includes the hair volume, so the face sits in its lower half.
        (0.0, head_y - 0.5 * r, 0.02 + 0.95 * r),  # nose
        (0.38 * r, head_y - 0.3 * r, 0.02 + 0.82 * r),  # left eye
        (-0.38 * r, head_y - 0.3 * r, 0.02 + 0.82 * r),
        (0.97 * r, head_y - 0.25 * r, 0.02 - 0.05 * r),  # left ear
        (-0.97 * r, head_y - 0.25 * r, 0.02 - 0.05 * r),
    )
    (lh, lk, la, lt), (rh, rk, ra, rt) = legs
    (ls, le, lw), (rs, re, rw) = arms
    joints = face + (ls, rs, le, re, lw, rw, lh, rh, lk, rk, la, ra)

    def down(p: tuple[float, float, float]) -> tuple[float, float, float]:
        return (p[0], p[1] - drop, p[2])

    return _Body(
        joints=tuple(down(p) for p in joints),
        head=down(head),
        toes=(down(lt), down(rt)),
        shoulder_y=shoulder_y - drop,
        hip_y=hip_y - drop,
    )


# Confidence of the face joints per facing: (nose, near/left eye, far/right eye, ...).
_FACE_SCORES = {
    "front": (0.97, 0.95, 0.95, 0.72, 0.72),
    "back": (0.06, 0.08, 0.08, 0.7, 0.7),
}


@lru_cache(maxsize=16)
def _scores(ears_covered: bool, facing: str) -> tuple[float, ...]:
    lz = _AXES[facing][1]
    scores = [0.0] * 17
    if facing in _FACE_SCORES:
        scores[:5] = _FACE_SCORES[facing]
    else:
        left_near = lz > 0
        scores[0] = 0.93
        scores[1], scores[2] = (0.88, 0.3) if left_near else (0.3, 0.88)
        scores[3], scores[4] = (0.85, 0.12) if left_near else (0.12, 0.85)
    if ears_covered:  # by long hair or a beanie
        scores[3] *= 0.5
        scores[4] *= 0.5
    for j in range(5, 17):
        side = 1.0 if j % 2 == 1 else -1.0  # COCO puts left joints at odd indices
        nearness = side * lz  # +1 near side, -1 far side, 0 front/back
        distal = j >= 7 and j not in (11, 12)  # elbows, wrists, knees, ankles
        if nearness < 0:
            scores[j] = 0.3 if distal else 0.45
        else:
            scores[j] = 0.93 + 0.04 * nearness
    return tuple(scores)


# -- drawing -----------------------------------------------------------------------------
Point = tuple[float, float]


def _limb(draw: ImageDraw.ImageDraw, p0: Point, p1: Point, w0: float, w1: float, fill: object,
          cap: bool = True) -> None:
    """A tapered segment, with a round cap at ``p1`` where a bend must look smooth (knees,
    elbows); ends that something else covers skip the cap, which halves the draw calls."""
    dx, dy = p1[0] - p0[0], p1[1] - p0[1]
    norm = math.hypot(dx, dy) or 1.0
    nx, ny = -dy / norm / 2, dx / norm / 2
    draw.polygon(
        [(p0[0] + nx * w0, p0[1] + ny * w0), (p1[0] + nx * w1, p1[1] + ny * w1),
         (p1[0] - nx * w1, p1[1] - ny * w1), (p0[0] - nx * w0, p0[1] - ny * w0)],
        fill=fill,
    )
    if cap:
        _disc(draw, p1, w1 / 2, fill)


def _disc(draw: ImageDraw.ImageDraw, p: Point, radius: float, fill: object) -> None:
    draw.ellipse((p[0] - radius, p[1] - radius, p[0] + radius, p[1] + radius), fill=fill)


def _lerp(a: Point, b: Point, t: float) -> Point:
    return (a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t)


# A garment outline: rows (y, x_left, x_right) from top to bottom in image coordinates.
Rows = list[tuple[float, float, float]]


def _outline(rows: Rows) -> list[Point]:
    return [(xl, y) for y, xl, _ in rows] + [(xr, y) for y, _, xr in reversed(rows)]


def _row_at(rows: Rows, t: float) -> tuple[float, float, float]:
    """The garment row at fraction ``t`` between its first two rows (shoulders to hips)."""
    (y0, l0, r0), (y1, l1, r1) = rows[0], rows[1]
    return (y0 + (y1 - y0) * t, l0 + (l1 - l0) * t, r0 + (r1 - r0) * t)


def _band(rows: Rows, t0: float, t1: float) -> list[Point]:
    a, b = _row_at(rows, t0), _row_at(rows, t1)
    return [(a[1], a[0]), (a[2], a[0]), (b[2], b[0]), (b[1], b[0])]


@dataclass(frozen=True)
class _Paint:
    """Fill values of one modality: RGB tuples for visible, 0..255 ints for infrared."""

    skin: object
    hair: object
    top: object
    pattern: object
    lower: object
    shoe: object
    hat: object
    bag: object
    strap: object
    eye: object | None  # eyes are drawn only where they show (visible light)


@lru_cache(maxsize=4096)
def _paints(ident: Identity, modality: int) -> tuple[_Paint, _Paint]:
    """Paint for near-side parts and for far-side parts (which are in the body's shade)."""
    if modality == INFRARED:
        def heat(v: float, shade: float) -> int:
            return int(min(max(v * shade, 0.0), 1.0) * 255 + 0.5)

        values = (ident.skin_heat, ident.hair_heat, ident.top_heat, ident.pattern_heat, ident.lower_heat,
                  ident.shoe_heat, ident.hat_heat, ident.bag_heat, ident.bag_heat * 0.9)
        near = _Paint(*(heat(v, 1.0) for v in values), eye=None)
        far = _Paint(*(heat(v, 0.96) for v in values), eye=None)
        return near, far

    def shade(c: RGB, k: float) -> RGB:
        return (int(c[0] * k), int(c[1] * k), int(c[2] * k))

    colours = (ident.skin_rgb, ident.hair_rgb, ident.top_rgb, ident.pattern_rgb, ident.lower_rgb,
               ident.shoe_rgb, ident.hat_rgb, ident.bag_rgb, shade(ident.bag_rgb, 0.7))
    near = _Paint(*colours, eye=(30, 22, 20))
    far = _Paint(*(shade(c, 0.78) for c in colours), eye=(30, 22, 20))
    return near, far


def _draw_person(draw: ImageDraw.ImageDraw, ident: Identity, body: _Body, facing: str,
                 project: Callable[[tuple[float, float, float]], Point], unit: float,
                 paint: _Paint, far_paint: _Paint) -> None:
    """Draw the figure from its projected joints, back to front.

    ``unit`` is the length of one body unit in pixels. Every part is queued with its depth
    towards the camera and drawn in depth order, which is what hides far limbs behind the
    torso in side views and a backpack behind the body in front views.
    """
    lx, lz, fx, fz = _AXES[facing]
    side_view = abs(lz) > 0.5
    g = ident.girth
    kp = [project(p) for p in body.joints]
    parts: list[tuple[float, int, Callable[[], None]]] = []

    def queue(depth: float, fn: Callable[[], None]) -> None:
        parts.append((depth, len(parts), fn))

    def depth_of(p: tuple[float, float, float]) -> float:
        return p[0] * lz + p[2] * fz

    def half(lateral: float, depth: float) -> float:
        """Projected half-width of a body slab ``lateral`` wide and ``depth`` deep."""
        return 0.5 * math.hypot(lateral * lx, depth * fx) * unit

    # -- torso and top garment -------------------------------------------------------
    sh_mid = _lerp(kp[5], kp[6], 0.5)
    hip_mid = _lerp(kp[11], kp[12], 0.5)
    top_hw = half(ident.shoulder_width + 0.03 * g, _TORSO_DEPTH * g)
    hip_hw = half(ident.hip_width + 0.05 * g, _TORSO_DEPTH * 0.95 * g)
    lean = 0.015 * unit * fx  # a walker leans slightly forward
    top_y = sh_mid[1] - 0.012 * unit
    waist_y = hip_mid[1] - 0.035 * unit
    torso: Rows = [(top_y, sh_mid[0] + lean - top_hw, sh_mid[0] + lean + top_hw),
                   (waist_y, hip_mid[0] - hip_hw, hip_mid[0] + hip_hw)]

    def thigh_span(drop: float) -> tuple[float, float]:
        """Image x-extent of both thighs ``drop`` body units below the hips (for hems)."""
        xs = []
        for hip, knee in ((kp[11], kp[13]), (kp[12], kp[14])):
            t = min(1.0, drop * unit / max(1.0, knee[1] - hip[1]))
            p = _lerp(hip, knee, t)
            xs += [p[0] - 0.05 * g * unit, p[0] + 0.05 * g * unit]
        return min(xs), max(xs)

    garment = list(torso)
    if ident.coat:
        hem_y = hip_mid[1] + ident.coat_length * unit
        lo, hi = thigh_span(ident.coat_length)
        flare = hip_hw * 1.2
        garment.append((hem_y, min(hip_mid[0] - flare, lo), max(hip_mid[0] + flare, hi)))

    def draw_top() -> None:
        outline = _outline(garment)
        # The collar point lifts the neckline so the shoulders slope instead of ending flat.
        outline.insert(0, (sh_mid[0] + lean, top_y - 0.01 * unit))
        draw.polygon(outline, fill=paint.top)
        if ident.pattern == "stripes":
            n = ident.pattern_count
            edges = [0.12 + 0.86 * i / (2 * n - 1) for i in range(2 * n)]
            for i in range(n):
                draw.polygon(_band(garment, edges[2 * i], edges[2 * i + 1]), fill=paint.pattern)
        elif ident.pattern == "band":
            t = ident.band_position
            draw.polygon(_band(garment, t - 0.1, t + 0.1), fill=paint.pattern)
        elif ident.pattern == "split":
            if side_view:
                # Only the half on the camera's side shows; the person's left half is the
                # pattern half.
                if lz > 0:
                    draw.polygon(_outline(garment), fill=paint.pattern)
            else:
                mid = [(y, (xl + xr) / 2, xr if lx > 0 else xl) for y, xl, xr in garment]
                draw.polygon(_outline([(y, min(a, b), max(a, b)) for y, a, b in mid]), fill=paint.pattern)

    queue(0.0, draw_top)

    # -- neck and head ---------------------------------------------------------------
    head = project(body.head)
    r = ident.head_size * unit
    rx, ry = (1.0 if side_view else 0.88) * r, 1.1 * r
    box = (head[0] - rx, head[1] - ry, head[0] + rx, head[1] + ry)

    def draw_neck() -> None:
        nw = 0.45 * r
        draw.rectangle((head[0] - nw, head[1], head[0] + nw, sh_mid[1]), fill=paint.skin)

    queue(-0.001, draw_neck)

    if ident.hair == "long":
        def draw_long_hair() -> None:
            bottom = sh_mid[1] + 0.06 * unit
            if side_view:
                back = head[0] - fx * 1.05 * r
                xs = sorted((back, head[0] - fx * 0.2 * r))
                draw.polygon([(xs[0], head[1]), (xs[1], head[1]), (xs[1] - fx * 0.1 * r, bottom),
                              (xs[0] - fx * 0.2 * r, bottom)], fill=paint.hair)
            else:
                w = 1.05 * r
                draw.polygon([(head[0] - w, head[1]), (head[0] + w, head[1]), (head[0] + w * 1.1, bottom),
                              (head[0] - w * 1.1, bottom)], fill=paint.hair)

        # Long hair hangs behind the shoulders seen from the front, over the back otherwise.
        queue(-0.2 if facing == "front" else 0.05, draw_long_hair)

    def draw_head() -> None:
        draw.ellipse(box, fill=paint.skin)
        if facing == "back":
            draw.ellipse(box, fill=paint.hair)
            if ident.hair == "short":
                draw.chord(box, 55, 125, fill=paint.skin)  # bare nape under short hair
        elif facing == "front":
            spread = {"short": 15, "medium": 0, "long": -12}[ident.hair]  # fringe stays above the eyes
            draw.chord((box[0] - 0.05 * r, box[1] - 0.08 * r, box[2] + 0.05 * r, box[3]), 180 + spread, 360 - spread,
                       fill=paint.hair)
        else:
            low = {"short": 130, "medium": 105, "long": 90}[ident.hair]
            start, end = (low, 330) if fx > 0 else (210, 360 + 180 - low)
            draw.chord(box, start, end, fill=paint.hair)
        if paint.eye is not None and r >= 5 and facing != "back":
            for j in ((1, 2) if facing == "front" else ((1,) if lz > 0 else (2,))):
                draw.point(kp[j], fill=paint.eye)
        if ident.hat != "none":
            lift = 0.25 * r
            dome = (box[0] - 0.08 * r, box[1] - lift, box[2] + 0.08 * r, box[3] - lift)
            draw.chord(dome, 180 if ident.hat == "cap" else 170, 360 if ident.hat == "cap" else 370, fill=paint.hat)
            if ident.hat == "cap" and facing != "back":
                brim_y = head[1] - 0.3 * r
                if side_view:
                    tip = head[0] + fx * 1.7 * r
                    xs = sorted((head[0], tip))
                    draw.rectangle((xs[0], brim_y - 0.12 * r, xs[1], brim_y + 0.12 * r), fill=paint.hat)
                else:
                    draw.ellipse((head[0] - 1.05 * r, brim_y - 0.25 * r, head[0] + 1.05 * r, brim_y + 0.25 * r),
                                 fill=paint.hat)

    queue(0.3, draw_head)

    # -- legs and lower garment ------------------------------------------------------
    thigh_w, knee_w, ankle_w = 0.085 * g * unit, 0.062 * g * unit, 0.045 * g * unit
    for hip_j, knee_j, ankle_j, toe in ((11, 13, 15, body.toes[0]), (12, 14, 16, body.toes[1])):
        near = depth_of(body.joints[hip_j]) >= 0
        pt = paint if near else far_paint

        def draw_leg(hip_j: int = hip_j, knee_j: int = knee_j, ankle_j: int = ankle_j,
                     toe: tuple = toe, pt: _Paint = pt) -> None:
            hip, knee, ankle = kp[hip_j], kp[knee_j], kp[ankle_j]
            toe_p = project(toe)
            if side_view:
                _limb(draw, ankle, toe_p, ankle_w, 0.035 * unit, pt.shoe)
            else:
                _disc(draw, (ankle[0], ankle[1] + 0.3 * ankle_w), 0.65 * ankle_w, pt.shoe)
            thigh_fill = pt.skin if ident.lower == "skirt" else pt.lower
            shin_fill = pt.lower if ident.lower == "trousers" else pt.skin
            _limb(draw, knee, ankle, knee_w, ankle_w, shin_fill, cap=False)
            if ident.lower == "shorts":
                split = _lerp(hip, knee, ident.lower_length)
                split_w = thigh_w + (knee_w - thigh_w) * ident.lower_length
                _limb(draw, split, knee, split_w, knee_w, pt.skin)
                _limb(draw, hip, split, thigh_w, split_w * 1.08, pt.lower, cap=False)
            else:
                _limb(draw, hip, knee, thigh_w, knee_w, thigh_fill)

        queue(depth_of(body.joints[knee_j]) * 0.5 + depth_of(body.joints[hip_j]) - 0.05, draw_leg)

    def draw_pelvis() -> None:
        crotch = hip_mid[1] + 0.07 * unit
        fill = paint.skin if ident.lower == "skirt" else paint.lower
        draw.polygon([(hip_mid[0] - hip_hw, waist_y), (hip_mid[0] + hip_hw, waist_y),
                      (hip_mid[0] + hip_hw * 0.95, hip_mid[1] + 0.02 * unit), (hip_mid[0], crotch),
                      (hip_mid[0] - hip_hw * 0.95, hip_mid[1] + 0.02 * unit)], fill=fill)

    queue(-0.01, draw_pelvis)

    if ident.lower == "skirt":
        def draw_skirt() -> None:
            hem_y = hip_mid[1] + ident.lower_length * unit
            lo, hi = thigh_span(ident.lower_length)
            flare = hip_hw * 1.35
            draw.polygon([(hip_mid[0] - hip_hw, waist_y), (hip_mid[0] + hip_hw, waist_y),
                          (max(hip_mid[0] + flare, hi), hem_y), (min(hip_mid[0] - flare, lo), hem_y)],
                         fill=paint.lower)

        queue(0.1, draw_skirt)

    if ident.coat:
        # A coat hangs over the legs; the top garment itself is drawn as the coat.
        parts[:] = [(0.09 if fn is draw_top else d, i, fn) for d, i, fn in parts]

    # -- arms ------------------------------------------------------------------------
    upper_w, elbow_w, wrist_w = 0.062 * g * unit, 0.05 * g * unit, 0.04 * g * unit
    for side, (sh_j, el_j, wr_j) in ((1.0, (5, 7, 9)), (-1.0, (6, 8, 10))):
        near = side * lz >= 0
        pt = paint if near else far_paint
        sleeve_fill = pt.top
        if ident.pattern == "split" and side > 0:
            sleeve_fill = pt.pattern  # the split runs down the left sleeve too

        def draw_arm(sh_j: int = sh_j, el_j: int = el_j, wr_j: int = wr_j, pt: _Paint = pt,
                     sleeve_fill: object = sleeve_fill) -> None:
            sh, el, wr = kp[sh_j], kp[el_j], kp[wr_j]
            _disc(draw, sh, upper_w / 2, sleeve_fill)
            if ident.sleeve == "long":
                _limb(draw, sh, el, upper_w, elbow_w, sleeve_fill)
                _limb(draw, el, wr, elbow_w, wrist_w, sleeve_fill, cap=False)
            else:
                cuff = _lerp(sh, el, 0.6)
                _limb(draw, cuff, el, upper_w, elbow_w, pt.skin)
                _limb(draw, el, wr, elbow_w, wrist_w, pt.skin, cap=False)
                _limb(draw, sh, cuff, upper_w * 1.1, upper_w * 1.05, sleeve_fill, cap=False)
            hand = _lerp(el, wr, 1.18)
            _disc(draw, hand, 0.6 * wrist_w, pt.skin)

        queue(side * lz * ident.shoulder_width / 2 + 0.1, draw_arm)

    # -- bags ------------------------------------------------------------------------
    if ident.bag == "backpack":
        size = ident.bag_size
        depth = 0.11 * size
        centre3 = (0.0, body.shoulder_y - 0.15, -(_TORSO_DEPTH * g / 2 + depth / 2))
        centre = project(centre3)
        bw = half(0.24 * size, depth)
        bh = 0.14 * size * unit

        def draw_backpack() -> None:
            x0, x1, y0, y1 = centre[0] - bw, centre[0] + bw, centre[1] - bh, centre[1] + bh
            c = 0.25 * min(bw, bh)
            draw.polygon([(x0 + c, y0), (x1 - c, y0), (x1, y0 + c), (x1, y1), (x0, y1), (x0, y0 + c)],
                         fill=paint.bag)

        queue(depth_of(centre3), draw_backpack)
        if facing != "back":
            def draw_straps() -> None:
                width = max(1, round(0.022 * unit))
                if side_view:
                    top = (sh_mid[0] + lean, top_y)
                    draw.line([top, (top[0] + fx * 0.05 * unit, top[1] + 0.15 * unit)], fill=paint.strap, width=width)
                else:
                    for j in (5, 6):
                        x = kp[j][0] + 0.45 * (sh_mid[0] - kp[j][0])
                        draw.line([(x, top_y), (x + 0.2 * (kp[j][0] - sh_mid[0]), top_y + 0.2 * unit)],
                                  fill=paint.strap, width=width)

            queue(0.05, draw_straps)
    elif ident.bag == "shoulder":
        sb = 1.0 if ident.bag_side == "left" else -1.0
        size = ident.bag_size
        centre3 = (sb * (ident.hip_width / 2 + 0.075 * g), body.hip_y + 0.03, 0.02)
        centre = project(centre3)
        bw = half(0.07, 0.17 * size)
        bh = 0.06 * size * unit

        def draw_bag() -> None:
            draw.rectangle((centre[0] - bw, centre[1] - bh, centre[0] + bw, centre[1] + bh), fill=paint.bag)

        def draw_strap() -> None:
            # The strap crosses the body from the opposite shoulder (a cross-body bag).
            shoulder = kp[6] if sb > 0 else kp[5]
            start = (shoulder[0] + 0.3 * (sh_mid[0] - shoulder[0]), top_y)
            draw.line([start, (centre[0], centre[1] - bh)], fill=paint.strap, width=max(1, round(0.02 * unit)))

        queue(depth_of(centre3) + (0.0 if side_view else 0.12), draw_bag)
        queue(0.05, draw_strap)

    parts.sort(key=lambda part: (part[0], part[1]))
    for _, _, fn in parts:
        fn()


def _fit(kp: list[Point], width: int, height: int) -> tuple[float, float]:
    """Shift that keeps every keypoint at least half a pixel inside the image."""
    xs = [p[0] for p in kp]
    ys = [p[1] for p in kp]
    lo, hi = 0.5, width - 1.5
    dx = max(0.0, lo - min(xs)) - max(0.0, max(xs) - hi)
    lo, hi = 0.5, height - 1.5
    dy = max(0.0, lo - min(ys)) - max(0.0, max(ys) - hi)
    return dx, dy


def render(identity: Identity, pose: Pose, scene: Scene, size: tuple[int, int],
           rng: np.random.Generator) -> tuple[Image.Image, np.ndarray]:
    """Draw ``identity`` in ``pose`` as seen by ``scene``'s camera.

    Returns the ``size = (width, height)`` RGB image (infrared has three equal channels, as
    real IR frames are stored) and the ``(17, 3)`` float32 COCO-17 keypoints ``x, y, score``
    in pixels of that image. The keypoints are the joints the figure was drawn from; the
    score is lower for joints hidden by the body. ``rng`` drives the per-image variation
    (background crop and clutter, lighting, noise); the same inputs and generator state give
    the same image.
    """
    width, height = int(size[0]), int(size[1])
    if width < 8 or height < 16:
        raise ValueError(f"size={size} is too small to draw a person; use at least (8, 16).")
    if pose.facing not in _AXES:
        raise ValueError(f"pose.facing={pose.facing!r} is not one of {FACINGS}.")
    if scene.modality not in (VISIBLE, INFRARED):
        raise ValueError(f"scene.modality={scene.modality!r} must be 0 (visible) or 1 (infrared).")

    lx, _, fx, _ = _AXES[pose.facing]
    body = _pose_body(identity, pose.phase % 1.0)
    unit = pose.scale * height
    ox, oy = pose.cx * width, pose.ground * height

    raw = [(ox + (p[0] * lx + p[2] * fx) * unit, oy - p[1] * unit) for p in body.joints]
    dx, dy = _fit(raw, width, height)
    scores = _scores(identity.hair == "long" or identity.hat == "beanie", pose.facing)
    keypoints = np.array([(x + dx, y + dy, c) for (x, y), c in zip(raw, scores)], np.float32)

    # Infrared is drawn on a canvas with a margin that the blur consumes.
    infrared = scene.modality == INFRARED
    pad = _blur_passes(height) if infrared else 0
    ox, oy = ox + dx + pad, oy + dy + pad

    def project(p: tuple[float, float, float]) -> Point:
        return (ox + (p[0] * lx + p[2] * fx) * unit, oy - p[1] * unit)

    # One draw for all per-image randomness: each generator call costs as much as a
    # polygon fill at this size.
    u = rng.random(7 if infrared else 32).tolist()
    x0 = int(u[0] * (width + 1))
    canvas = _panorama(scene.camera, scene.modality, width, height).crop(
        (x0, 0, x0 + width + 2 * pad, height + 2 * pad))
    draw = ImageDraw.Draw(canvas)
    near, far = _paints(identity, scene.modality)
    grid = _grid(width, height)
    if infrared:
        _draw_person(draw, identity, body, pose.facing, project, unit, near, far)
        # Thermal optics are soft: separable [1, 2, 1] blur passes, each eating one pixel of
        # the margin, so the result is exactly width x height.
        q = np.asarray(canvas).astype(np.float32)
        for _ in range(pad):
            v = q[:-2] + q[2:]
            v += q[1:-1]
            v += q[1:-1]
            q = v[:, :-2] + v[:, 2:]
            q += v[:, 1:-1]
            q += v[:, 1:-1]
        # Automatic gain control of the camera plus a per-image shading ramp.
        gain, offset, ry, ny, nx, sigma = u[1:7]
        q *= np.float32((0.85 + 0.27 * gain) / 16.0**pad)
        y0, x0 = int(ny * (height + 1)), int(nx * (width + 1))
        q += grid.noise1[int(sigma * 4), y0 : y0 + height, x0 : x0 + width]
        q += grid.ys * np.float32(24 * ry - 12) + np.float32(30 * offset - 18)
        np.clip(q, 0, 255, out=q)
        gray = Image.fromarray(q.astype(np.uint8), "L")
        return Image.merge("RGB", (gray, gray, gray)), keypoints

    for i in range(int(u[1] * 3) + 1):
        # Per-image clutter (passers-by, signs, furniture) in muted colours.
        cx, cy, hw, hh, r, g, b = u[2 + 7 * i : 9 + 7 * i]
        cx, cy = cx * width, cy * height
        hw, hh = (0.05 + 0.25 * hw) * width, (0.03 + 0.17 * hh) * height
        grey = (r + g + b) / 3
        colour = tuple(int(20 + 215 * (0.6 * c + 0.4 * grey)) for c in (r, g, b))
        draw.rectangle((cx - hw, cy - hh, cx + hw, cy + hh), fill=colour)
    _draw_person(draw, identity, body, pose.facing, project, unit, near, far)
    # Lighting: exposure, contrast about mid-grey, a colour cast and a horizontal illumination
    # ramp (the camera's own vertical light falloff is in its background).
    # The RGB samples are handled as interleaved rows so that every numpy operation runs
    # over long contiguous rows instead of 3-element inner loops.
    contrast, exposure, cr, cg, cb, rx, ny, nx, sigma = u[23:32]
    contrast = 0.75 + 0.45 * contrast
    exposure = 0.65 + 0.65 * exposure
    gains = np.array([exposure * (0.92 + 0.16 * c) for c in (cr, cg, cb)], np.float32)[grid.channel]
    q = np.asarray(canvas).reshape(height, 3 * width) * (gains * (contrast * (1 + (0.6 * rx - 0.3) * grid.xs3)))
    y0, x0 = int(ny * (height + 1)), int(nx * (width + 1))
    q += gains * np.float32(128 * (1 - contrast))
    q += grid.noise3[int(sigma * 4), y0 : y0 + height, 3 * x0 : 3 * x0 + 3 * width]
    np.clip(q, 0, 255, out=q)
    return Image.fromarray(q.astype(np.uint8).reshape(height, width, 3), "RGB"), keypoints
