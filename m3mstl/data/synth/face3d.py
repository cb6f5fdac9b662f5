"""3D head geometry of SynthTFD68: a lofted head surface with the 68 iBUG landmarks on it.
("spec N.N": section N.N of docs/thermal_physics.md.)

Head frame (the one of `m3mstl.core.pose`): millimetres, x to the image right of a frontal face (the
subject's LEFT), y up, z out of the face towards the camera; y = 0 is the pupil line and the
origin lies on the head's vertical axis, near the tragi (spec 5.3).

The head is a stack of horizontal cross-sections. At height y the section is a half
super-ellipse in front (half-width W(y) at depth Zw(y), reaching the mid-line at F(y), exponent
n(y)) and a half ellipse behind (reaching B(y)). The five profile curves are monotone cubic
interpolants through control points, moved and scaled by the subject's measurements. On top of
this base:

* relief: facial features (nose, lips, brow ridge, eye sockets, cheekbones, chin, the open-
  mouth cavity) as displacements along z, placed in CHART coordinates = the (x, y) of the base
  point. A landmark is placed by its chart (x, y), so it lies exactly on its feature, and the
  depth of the face at any (x, y) has a closed form (`front_depth`);
* hair and beard: an offset along the surface normal (rendered, but never hiding landmarks).

Because every section is convex in x and the relief acts along z, a point is inside the head
exactly when B-side < z < front depth at its (x, y): `HeadModel.inside` is closed form and the
self-occlusion of a landmark is an exact ray march.

The neutral landmark layout is built from the anthropometric facts of the physics spec,
section 5.2 (inter-canthal and eye widths, nose and mouth widths, n-sn, sn-sto, sn-me, zy-zy,
go-go) and the recipe of section 5.3 (pupils on y = 0, nasion z ~85, nose tip z ~100-105,
lips z ~90, chin z ~85, jaw contour from the tragus through gonion to menton). It is not copied
from any published mean shape. Ears and the neck are separate surfaces (`ear_surface`,
`neck_surface`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.interpolate import PchipInterpolator

from m3mstl.core.landmarks import NUM_LANDMARKS
from m3mstl.core import vec3


# ---------------------------------------------------------------------------------------------
# Identity and expression
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FaceShape:
    """Per-subject geometry: anthropometric measurements (mm) and small asymmetries.

    Defaults are the adult male means of spec 5.2 (jkamprs Table 9) where the spec gives one;
    the remaining head dimensions are [A] assumptions noted beside them.
    """

    scale: float = 1.0              # overall size factor applied to every length
    en_en: float = 32.2             # inter-canthal width, 5.2
    eye_width: float = 34.0         # ex-en, 5.2
    zy_zy: float = 133.8            # bizygomatic (face) width, 5.2
    go_go: float = 106.6            # bigonial (jaw) width, 5.2
    al_al: float = 43.2             # nose (alar) width, 5.2
    ch_ch: float = 55.9             # mouth width, 5.2
    n_sn: float = 51.0              # nasion - subnasale, 5.2
    sn_sto: float = 25.5            # subnasale - stomion, 5.2
    sn_me: float = 76.4             # subnasale - menton, 5.2
    forehead_height: float = 62.0   # nasion - trichion (hairline), 5.2 "thirds" 55-77
    nose_projection: float = 21.0   # tip above the face plane; puts the tip at z ~100-105 (5.3)
    lip_fullness: float = 1.0       # scales the vermilion bumps
    chin_projection: float = 1.0    # scales the chin bump
    cheek_fullness: float = 1.0     # scales the cheekbone bumps
    brow_ridge: float = 1.0         # scales the supra-orbital ridge
    head_breadth: float = 150.0     # eu-eu [A]: not in the spec; adult heads 140-160 mm
    head_length: float = 195.0      # g-op [A]: adult heads 180-205 mm
    ear_length: float = 62.0        # [A] adult pinna 55-70 mm
    ear_protrusion_deg: float = 20.0  # [A] angle between the pinna and the side of the head
    # Per-landmark (68, 2) chart offsets in mm: the non-parametric part of the identity
    # ("PCA-like per-subject noise", 5.3), small and spatially smooth.
    landmark_offsets: tuple[tuple[float, float], ...] = field(
        default_factory=lambda: tuple((0.0, 0.0) for _ in range(NUM_LANDMARKS)))


@dataclass(frozen=True)
class HairStyle:
    """Scalp hair and facial hair of a subject."""

    density: float = 0.8            # 0 bald .. 1 thick; sets thickness and how cold the hair reads
    thickness_mm: float = 10.0      # hair layer over the crown at full density
    recession_mm: float = 0.0       # temple recession of the hairline
    sideburn_mm: float = 10.0       # how far below the pupil line the sideburns reach
    beard_density: float = 0.0      # 0 none, ~0.3 stubble, 1 full beard
    beard_thickness_mm: float = 0.0  # relief of a full beard


@dataclass(frozen=True)
class Expression:
    """Expression parameters; all zero is the neutral face."""

    name: str = "neutral"           # neutral | mouth_open | smile | brow_raise
    mouth_open_mm: float = 0.0      # jaw drop at the chin (5.3: 5-25 mm)
    smile: float = 0.0              # 0..1, mouth corners up and out
    brow_raise: float = 0.0         # 0..1, brows and forehead up


# ---------------------------------------------------------------------------------------------
# Small numeric helpers
# ---------------------------------------------------------------------------------------------


def smoothstep(x: np.ndarray | float) -> np.ndarray:
    """Cubic 0..1 ramp on [0, 1] (clamped outside)."""
    t = np.clip(x, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def bump(dx: np.ndarray, dy: np.ndarray, rx: float, ry: float) -> np.ndarray:
    """Compactly supported smooth bump (1 - s^2)^3, s the elliptic distance; 0 outside.

    Evaluated only inside its bounding box: most features touch a small part of the face.
    """
    dx, dy = np.broadcast_arrays(np.asarray(dx, dtype=float), np.asarray(dy, dtype=float))
    out = np.zeros(dx.shape)
    inside = (np.abs(dx) < rx) & (np.abs(dy) < ry)
    if inside.any():
        rx_in = rx[inside] if np.ndim(rx) else rx
        ry_in = ry[inside] if np.ndim(ry) else ry
        s2 = (dx[inside] / rx_in) ** 2 + (dy[inside] / ry_in) ** 2
        out[inside] = (1.0 - np.minimum(s2, 1.0)) ** 3
    return out


def _central_difference(values: np.ndarray, axis: int) -> np.ndarray:
    """Central differences of a 2-D array along one axis (one-sided at the ends)."""
    out = np.empty_like(values)
    if axis == 1:
        np.subtract(values[:, 2:], values[:, :-2], out=out[:, 1:-1])
        np.subtract(values[:, 1], values[:, 0], out=out[:, 0])
        np.subtract(values[:, -1], values[:, -2], out=out[:, -1])
    else:
        np.subtract(values[2:], values[:-2], out=out[1:-1])
        np.subtract(values[1], values[0], out=out[0])
        np.subtract(values[-1], values[-2], out=out[-1])
    return out


def grid_normals(points: np.ndarray, with_stretch: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Unit normals of a (rows, cols, 3) parametric grid, oriented by d/dcol x d/drow.

    With `with_stretch`, also the (rows, cols) distance in mm to the farther grid neighbour:
    where relief stretches the surface, the renderer splats wider so no gap opens.
    """
    comps = [np.ascontiguousarray(points[..., i]) for i in range(3)]
    ax, ay, az = (_central_difference(c, 1) for c in comps)
    bx, by, bz = (_central_difference(c, 0) for c in comps)
    normals = np.empty(points.shape)
    nx, ny, nz = ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx
    inv = 1.0 / np.maximum(np.sqrt(nx * nx + ny * ny + nz * nz), 1e-12)
    normals[..., 0], normals[..., 1], normals[..., 2] = nx * inv, ny * inv, nz * inv
    if not with_stretch:
        return normals
    # Central differences span two steps (one at the ends): half of them is the step.
    step = 0.5 * np.sqrt(np.maximum(ax * ax + ay * ay + az * az, bx * bx + by * by + bz * bz))
    return normals, step


def facing_columns(cols: np.ndarray, camera: np.ndarray | None) -> np.ndarray:
    """The section angles (about the y axis, 0 = +z) a camera can see, in contiguous order.

    Keeps the half turn facing the camera plus a margin that grows with the camera's
    elevation (from above or below, the crown and the chin see the far side too).
    """
    if camera is None:
        return cols
    horizontal = float(np.hypot(camera[0], camera[2]))
    azimuth = float(np.arctan2(camera[0], camera[2]))
    elevation = float(np.degrees(np.arctan2(abs(camera[1]), max(horizontal, 1e-9))))
    half = np.deg2rad(min(180.0, 90.0 + 20.0 + 1.6 * elevation))
    offset = np.angle(np.exp(1j * (cols - azimuth)))       # wrapped to (-pi, pi]
    keep = np.abs(offset) <= half
    order = np.argsort(offset[keep], kind="stable")
    return cols[keep][order]


def row_norm(v: np.ndarray) -> np.ndarray:
    """Euclidean norm of each row of an (N, 3) array."""
    return np.sqrt(v[:, 0] ** 2 + v[:, 1] ** 2 + v[:, 2] ** 2)


# ---------------------------------------------------------------------------------------------
# Neutral landmark layout (chart coordinates, mm)
# ---------------------------------------------------------------------------------------------


def _jaw_contour(half_width: float, top_y: float, menton_y: float, exponent: float) -> np.ndarray:
    """17 jaw points (x, y) equally spaced along a super-ellipse arc, 0 on the subject's right."""
    theta = np.linspace(0.0, np.pi / 2, 400)
    x = half_width * np.cos(theta) ** (2.0 / exponent)
    y = top_y - (top_y - menton_y) * np.sin(theta) ** (2.0 / exponent)
    arc = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(x), np.diff(y)))])
    targets = np.linspace(0.0, arc[-1], 9)
    xs, ys = np.interp(targets, arc, x), np.interp(targets, arc, y)
    right = np.stack([-xs, ys], axis=1)                    # points 0..8 (subject's right is -x)
    left = np.stack([xs[::-1][1:], ys[::-1][1:]], axis=1)  # points 9..16
    return np.concatenate([right, left])


def _default_layout() -> dict[str, float | np.ndarray]:
    if "layout" not in _LAYOUT_CACHE:
        _LAYOUT_CACHE["layout"] = neutral_layout(FaceShape(scale=1.0))
    return _LAYOUT_CACHE["layout"]


_LAYOUT_CACHE: dict[str, dict] = {}


def neutral_layout(shape: FaceShape) -> dict[str, float | np.ndarray]:
    """Landmarks (68, 2) and named feature anchors of the neutral face in chart coordinates.

    y = 0 is the pupil line (spec 5.3). Returns "landmarks" and the anchor heights and
    widths the relief and the temperature field are built from.
    """
    s = shape.scale
    en = 0.5 * shape.en_en * s                 # inner canthus |x|
    # ex-en is a 3D distance and the outer canthus sits ~10 mm behind the inner one (5.3: z ~70
    # inner, 60-65 outer): its width component is sqrt(ex_en^2 - 10^2). With 5.2's means this
    # gives ex-ex ~97-98 mm, the table's 98.2.
    ex = en + np.sqrt(max((shape.eye_width * s) ** 2 - (10.0 * s) ** 2, 1.0))   # outer canthus |x|
    nasion_y = 4.0 * s                         # 5.3: nasion (0, 0..5)
    sn_y = nasion_y - shape.n_sn * s           # subnasale
    tip_y = sn_y + 5.0 * s                     # the tip sits ~5 mm above the subnasale
    sto_y = sn_y - shape.sn_sto * s            # stomion
    me_y = sn_y - shape.sn_me * s              # menton
    ch = 0.5 * shape.ch_ch * s                 # mouth corner |x|
    nostril = 0.5 * shape.al_al * s - 4.0 * s  # iBUG 31/35 sit inside the alar maximum

    pts = np.zeros((NUM_LANDMARKS, 2))
    # Jaw contour: from the tragus level (5.3: y -10..-20) through gonion to menton, a little
    # inside the face outline so that the points face the camera in a frontal view.
    pts[0:17] = _jaw_contour(0.5 * shape.zy_zy * s - 3.0 * s, -15.0 * s, me_y, 2.2)

    # Brows 17-21 (subject's right, outer -> inner), 22-26 mirrored: 20-25 mm above the pupils.
    brow_x = np.array([ex + 11.0 * s, ex - 1.0 * s, 0.5 * (en + ex) - 2.0 * s, en + 9.0 * s, en - 2.0 * s])
    brow_y = np.array([17.0, 23.5, 26.0, 24.5, 20.5]) * s
    pts[17:22] = np.stack([-brow_x, brow_y], axis=1)
    pts[22:27] = np.stack([brow_x[::-1], brow_y[::-1]], axis=1)

    # Nose bridge 27-30 (nasion to tip) and lower nose 31-35.
    pts[27:31, 1] = np.linspace(nasion_y, tip_y, 4)
    pts[31:36] = [[-nostril, sn_y + 3.0 * s], [-0.45 * nostril, sn_y + 0.6 * s], [0.0, sn_y],
                  [0.45 * nostril, sn_y + 0.6 * s], [nostril, sn_y + 3.0 * s]]

    # Eyes: 36 outer, 37-38 upper lid, 39 inner, 40-41 lower lid (right eye; left mirrored).
    def eye(sign: float) -> np.ndarray:
        outer, inner = sign * ex, sign * en
        third = (inner - outer) / 3.0
        return np.array([[outer, 1.0 * s], [outer + third, 4.6 * s], [outer + 2 * third, 4.4 * s],
                         [inner, -0.8 * s], [outer + 2 * third, -3.6 * s], [outer + third, -3.9 * s]])

    pts[36:42] = eye(-1.0)
    pts[42:48] = eye(1.0)[[3, 2, 1, 0, 5, 4]]  # 42 inner, 43-44 upper, 45 outer, 46-47 lower

    # Mouth: outer lip 48-59 from the right corner, inner lip 60-67.
    upper_v, lower_v = 8.0 * s, 10.0 * s       # vermilion heights [A]
    pts[48:60] = [[-ch, sto_y], [-0.62 * ch, sto_y + 0.62 * upper_v], [-0.25 * ch, sto_y + 1.05 * upper_v],
                  [0.0, sto_y + upper_v], [0.25 * ch, sto_y + 1.05 * upper_v], [0.62 * ch, sto_y + 0.62 * upper_v],
                  [ch, sto_y], [0.62 * ch, sto_y - 0.75 * lower_v], [0.25 * ch, sto_y - 0.97 * lower_v],
                  [0.0, sto_y - lower_v], [-0.25 * ch, sto_y - 0.97 * lower_v], [-0.62 * ch, sto_y - 0.75 * lower_v]]
    inner = ch - 3.0 * s
    pts[60:68] = [[-inner, sto_y], [-0.4 * ch, sto_y + 0.3 * s], [0.0, sto_y + 0.3 * s], [0.4 * ch, sto_y + 0.3 * s],
                  [inner, sto_y], [0.4 * ch, sto_y - 0.3 * s], [0.0, sto_y - 0.3 * s], [-0.4 * ch, sto_y - 0.3 * s]]

    pts += np.asarray(shape.landmark_offsets, dtype=float).reshape(NUM_LANDMARKS, 2)
    return {
        "landmarks": pts, "en": en, "ex": ex, "nasion_y": nasion_y, "tip_y": tip_y, "sn_y": sn_y,
        "sto_y": sto_y, "me_y": me_y, "ch": ch, "nostril": nostril, "al": 0.5 * shape.al_al * s,
        "pupil_x": 0.5 * (en + ex), "trichion_y": nasion_y + shape.forehead_height * s,
    }


# ---------------------------------------------------------------------------------------------
# Profiles of the base head
# ---------------------------------------------------------------------------------------------

# Control points of the base profiles for the default (adult male) shape [A]: heights y, half-width
# W, mid-line front depth F (without the nose and lips), back depth B, depth of the widest point
# Zw and the front exponent n. Anchors from spec 5.2/5.3: vertex to menton ~240 mm, widest face
# ~zy-zy/2 near y = -15, jaw ~go-go/2 near y = -85, menton ~-123, nasion root z ~76 (+ the nose
# ridge gives ~85), forehead z ~90, chin z ~85; the section below menton closes the head.
_PROFILE_Y = np.array([118.0, 112.0, 102.0, 88.0, 68.0, 45.0, 22.0, 5.0, -15.0, -35.0, -55.0, -75.0,
                       -90.0, -102.0, -112.0, -119.0, -124.0, -127.5])
_PROFILE_W = np.array([0.0, 32.0, 48.0, 61.0, 70.0, 74.5, 75.0, 73.5, 70.0, 67.0, 62.0, 57.0,
                       52.0, 44.0, 33.0, 22.0, 12.0, 0.0])
_PROFILE_F = np.array([-5.0, 30.0, 55.0, 73.0, 84.0, 88.0, 88.0, 77.0, 77.0, 80.0, 83.0, 83.0,
                       79.0, 80.0, 79.0, 76.0, 72.0, 68.0])
_PROFILE_B = np.array([-5.0, -45.0, -68.0, -86.0, -97.0, -101.0, -99.0, -93.0, -83.0, -70.0, -52.0, -25.0,
                       5.0, 28.0, 44.0, 55.0, 62.0, 68.0])
_PROFILE_ZW = np.array([-5.0, -5.0, -5.0, -5.0, -5.0, -5.0, -4.0, -2.0, 2.0, 6.0, 10.0, 14.0,
                        18.0, 26.0, 38.0, 48.0, 56.0, 68.0])
_PROFILE_N = np.array([2.0, 2.0, 2.0, 2.05, 2.15, 2.25, 2.35, 2.3, 2.35, 2.4, 2.4, 2.35,
                       2.3, 2.2, 2.1, 2.0, 2.0, 2.0])


_TABLE_SIZE = 1500


def _default_tables() -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The default profiles sampled densely (monotone cubic through the control points), once."""
    if not _TABLE_CACHE:
        y = np.linspace(_PROFILE_Y[0], _PROFILE_Y[-1], _TABLE_SIZE)
        for name, values in (("W", _PROFILE_W), ("F", _PROFILE_F), ("B", _PROFILE_B), ("Zw", _PROFILE_ZW),
                             ("n", _PROFILE_N)):
            _TABLE_CACHE[name] = PchipInterpolator(_PROFILE_Y[::-1], values[::-1])(y)
        _TABLE_CACHE["y"] = y
    return _TABLE_CACHE["y"], _TABLE_CACHE


_TABLE_CACHE: dict[str, np.ndarray] = {}


class Profiles:
    """The five base profile curves of one head, evaluated at any height.

    The default curves are sampled densely once; a subject's curves are the same samples
    moved and scaled by its measurements, evaluated by linear interpolation (smooth at the
    table's 0.16 mm spacing).
    """

    def __init__(self, shape: FaceShape, layout: dict, jaw_drop_mm: float) -> None:
        s = shape.scale
        y0, table = _default_tables()
        # Vertical measurements: the face below the pupils stretches with sn-me and n-sn; the
        # cranium above with the forehead height.
        default = _default_layout()
        y = np.where(y0 < 0, y0 * (layout["me_y"] / s) / default["me_y"],
                     y0 * (1.0 + 0.35 * (shape.forehead_height - 62.0) / 62.0))
        self.y = y * s
        # Width: cranium by head breadth, cheeks by zy-zy, jaw by go-go (blended by height).
        jaw_weight = smoothstep((-30.0 - y0) / 50.0)
        face_weight = smoothstep((30.0 - y0) / 40.0) * (1.0 - jaw_weight)
        cranium_weight = 1.0 - jaw_weight - face_weight
        self.W = table["W"] * (cranium_weight * shape.head_breadth / 150.0 + face_weight * shape.zy_zy / 133.8
                               + jaw_weight * shape.go_go / 106.6) * s
        length = shape.head_length / 195.0
        self.F = table["F"] * s
        self.B = np.where(y0 > -60.0, table["B"] * length, table["B"]) * s
        self.Zw = table["Zw"] * s
        self._values = {"W": self.W[::-1], "F": self.F[::-1], "B": self.B[::-1], "Zw": self.Zw[::-1],
                        "n": table["n"][::-1]}
        self._y_increasing = self.y[::-1]
        self.jaw_drop = jaw_drop_mm
        self.sto_y = layout["sto_y"]
        self.top, self.bottom = float(self.y[0]), float(self.y[-1]) - jaw_drop_mm

    def base_height(self, y: np.ndarray) -> np.ndarray:
        """Neutral height of the base section shown at height y (the jaw drop stretches the lower face)."""
        if self.jaw_drop <= 0:
            return y
        band = 35.0 + 1.5 * self.jaw_drop
        depth = np.maximum(self.sto_y - y, 0.0)
        # Inverse of "everything below the mouth moves down by the drop, smoothly from the lips".
        return y + self.jaw_drop * smoothstep(depth / band)

    def __call__(self, name: str, y: np.ndarray) -> np.ndarray:
        yb = self.base_height(np.asarray(y, dtype=float))
        return np.interp(yb, self._y_increasing, self._values[name])


# ---------------------------------------------------------------------------------------------
# The head model
# ---------------------------------------------------------------------------------------------

JAW_OUTLINE_RATIO = 0.88   # jaw contour |x| at most this share of the face half-width there


@dataclass
class HeadGrid:
    """Head-surface samples on a (rows, cols) parameter grid, flattened to N points."""

    points: np.ndarray         # (N, 3) head frame, mm (expression, hair and beard applied)
    normals: np.ndarray        # (N, 3) outward unit normals
    chart: np.ndarray          # (N, 2) chart coordinates of the deformed face
    neutral: np.ndarray        # (N, 2) chart coordinates before the expression warp
    front: np.ndarray          # (N,) 0..1: 1 on the front of the face where the chart is meaningful
    hair: np.ndarray           # (N,) 0..1 scalp-hair coverage
    beard: np.ndarray          # (N,) 0..1 facial-hair coverage
    cavity: np.ndarray         # (N,) 0..1 open-mouth interior
    shape: tuple[int, int]     # grid shape (rows, cols)
    stretch: np.ndarray | None = None  # (N,) mm to the farther grid neighbour


class HeadModel:
    """Surface, landmarks and inside test of one face (identity + hair + expression)."""

    def __init__(self, shape: FaceShape, hair: HairStyle, expression: Expression) -> None:
        self.shape, self.hair_style, self.expression = shape, hair, expression
        self.layout = neutral_layout(shape)
        self.profiles = Profiles(shape, self.layout, expression.mouth_open_mm)
        self._landmark_chart: np.ndarray | None = None
        # Jaw contour points sit on the mandible line a little inside the face outline, so a
        # frontal view sees all of them (x-ray landmarks, spec 4.4) and a few degrees of yaw
        # do not hide them.
        lm = np.array(self.layout["landmarks"], dtype=float)
        jaw = lm[:17]
        limit = JAW_OUTLINE_RATIO * self.profiles("W", jaw[:, 1])
        jaw[:, 0] = np.sign(jaw[:, 0]) * np.minimum(np.abs(jaw[:, 0]), limit)
        lm[:17] = jaw
        self.layout = dict(self.layout, landmarks=lm)

    # --- expression warp (chart space) -------------------------------------------------------
    def _mouth_gap(self, x: np.ndarray) -> np.ndarray:
        """Vertical opening of the lips at chart x (lens shaped, zero at the corners)."""
        ch = self.layout["ch"]
        return self.expression.mouth_open_mm * 0.75 * np.sqrt(np.clip(1.0 - (x / ch) ** 2, 0.0, 1.0))

    def unwarp(self, chart: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Neutral chart coordinates of deformed chart points, and the mouth-cavity weight."""
        x, y = chart[:, 0].copy(), chart[:, 1].copy()
        cavity = np.zeros_like(x)
        lay, e, s = self.layout, self.expression, self.shape.scale
        if e.brow_raise > 0:
            # Brows and lower forehead move up; the eyes stay, the hairline moves less.
            lift = 8.0 * e.brow_raise * s
            w = (smoothstep((y - 2.0 * s) / (14.0 * s)) * (1.0 - 0.6 * smoothstep((y - 40.0 * s) / (40.0 * s)))
                 * (1.0 - smoothstep((np.abs(x) - 55.0 * s) / (20.0 * s))))
            y = y - lift * w
        if e.smile > 0:
            # Mouth corners up and out; the inverse warp by two fixed-point steps.
            for sign in (-1.0, 1.0):
                cx, cy = sign * lay["ch"], lay["sto_y"]
                shift_x, shift_y = sign * 4.0 * e.smile * s, 5.0 * e.smile * s
                px, py = x.copy(), y.copy()
                for _ in range(2):
                    w = np.exp(-((px - cx) ** 2 + (py - cy) ** 2) / (2 * (16.0 * s) ** 2))
                    px, py = x - shift_x * w, y - shift_y * w
                x, y = px, py
        if e.mouth_open_mm > 0:
            # The lower lip, chin and jaw move down; between the lips a lens-shaped gap opens onto
            # the mouth cavity; beside the mouth the cheeks stretch instead of tearing.
            sto, drop = lay["sto_y"], e.mouth_open_mm
            gap = self._mouth_gap(x)
            lateral = 1.0 - smoothstep((np.abs(x) - lay["ch"]) / (45.0 * s))
            below_gap = y < sto - gap
            in_gap = (y < sto) & ~below_gap
            cavity = np.where(in_gap & (gap > 0.2), 1.0, 0.0)
            band = 35.0 + 1.5 * drop
            depth = np.maximum(sto - gap - y, 0.0)
            shift = np.where(below_gap, gap + (drop * lateral - gap) * smoothstep(depth / band), 0.0)
            y = np.where(in_gap, sto, y + shift)
        return np.stack([x, y], axis=1), cavity

    def warp_landmarks(self, neutral: np.ndarray) -> np.ndarray:
        """Forward expression warp of neutral chart points: inverts `unwarp` numerically."""
        target = np.asarray(neutral, dtype=float)
        guess = target.copy()
        e = self.expression
        if e.mouth_open_mm <= 0 and e.smile <= 0 and e.brow_raise <= 0:
            return guess                      # neutral: the warp is the identity
        for _ in range(60):  # fixed point; the warps are small and smooth
            back, _ = self.unwarp(guess)
            step = target - back
            guess = guess + step
            if np.abs(step).max() < 1e-10:
                break
        if self.expression.mouth_open_mm > 0:
            # Points below the stomion belong to the lower lip: keep them below the gap.
            sto = self.layout["sto_y"]
            lower = target[:, 1] < sto
            floor = sto - self._mouth_gap(guess[lower, 0]) - (sto - target[lower, 1])
            guess[lower, 1] = np.minimum(guess[lower, 1], floor)
        return guess

    # --- relief ---------------------------------------------------------------------------------
    def relief(self, neutral: np.ndarray, cavity: np.ndarray) -> np.ndarray:
        """Displacement along +z (mm) of the facial features at neutral chart points."""
        x, y = neutral[:, 0], neutral[:, 1]
        lay, shp, s = self.layout, self.shape, self.shape.scale
        out = np.zeros_like(x)

        # Nose: a ridge from above the nasion to the tip, rising from the nose root (~9 mm above
        # the face, so the nasion sits at z ~85) to the tip; the cross-section widens towards
        # the tip; rounded lobule and alae.
        top, tip, sn = lay["nasion_y"] + 8.0 * s, lay["tip_y"], lay["sn_y"]
        span = np.nonzero((y <= top + 10.0 * s) & (y >= sn - 2.0 * s) & (np.abs(x) < 17.0 * s))[0]
        if len(span):
            xs, ys = x[span], y[span]
            t = np.clip((top - ys) / (top - tip), 0.0, 1.0)
            root = 7.0 * s
            height = root + (shp.nose_projection * s - root) * t ** 1.6
            width = (7.5 + 9.0 * t ** 1.5) * s
            below = np.clip((tip - ys) / (tip - sn + 2.0 * s), 0.0, 1.0)
            height = height * (1.0 - smoothstep(below))
            fade_top = smoothstep((top + 10.0 * s - ys) / (12.0 * s))
            out[span] += height * fade_top * np.clip(1.0 - (xs / width) ** 2, 0.0, 1.0) ** 1.6
        out += 2.5 * s * bump(x, y - (tip + 1.0 * s), 12.0 * s, 9.0 * s)                      # lobule
        for sign in (-1.0, 1.0):
            out += 5.0 * s * bump(x - sign * (lay["al"] - 7.0 * s), y - (sn + 5.0 * s), 12.0 * s, 10.0 * s)

        # Mouth: the muzzle (teeth push the lips forward) and the two vermilions.
        sto, ch = lay["sto_y"], lay["ch"]
        out += 6.0 * s * bump(x, y - (sto + 2.0 * s), ch + 16.0 * s, 34.0 * s)
        out += 3.5 * shp.lip_fullness * s * bump(x, y - (sto + 4.0 * s), ch * 0.98, 5.0 * s)
        out += 4.0 * shp.lip_fullness * s * bump(x, y - (sto - 5.0 * s), ch * 0.92, 6.0 * s)
        out -= 1.2 * s * bump(x, y - sto, ch, 1.2 * s)                                       # lip line

        # Chin and the mentolabial sulcus above it.
        out += 4.0 * shp.chin_projection * s * bump(x, y - (lay["me_y"] + 15.0 * s), 22.0 * s, 17.0 * s)
        out -= 2.0 * s * bump(x, y - (sto - 17.0 * s), 18.0 * s, 5.0 * s)

        # Brow ridge, eye sockets with the eyeballs in them, cheekbones.
        out += 4.0 * shp.brow_ridge * s * bump(x, y - 19.0 * s, 58.0 * s, 12.0 * s)
        px = lay["pupil_x"]
        for sign in (-1.0, 1.0):
            out -= 5.0 * s * bump(x - sign * (px - 3.0 * s), y - 1.0 * s, 24.0 * s, 15.0 * s)
            out += 3.0 * s * bump(x - sign * px, y, 13.0 * s, 7.5 * s)
            out += 3.0 * shp.cheek_fullness * s * bump(x - sign * (px + 16.0 * s), y + 24.0 * s, 28.0 * s, 20.0 * s)

        # Open mouth: a cavity behind the lips.
        out -= 14.0 * s * cavity
        return out

    # --- closed-form surface queries ----------------------------------------------------------------
    def base_front(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Depth of the base front at (x, y) and the front weight (1 mid-face, 0 at the outline)."""
        w, f, zw, n = (self.profiles(k, y) for k in ("W", "F", "Zw", "n"))
        ratio = np.clip(np.abs(x) / np.maximum(w, 1e-6), 0.0, 1.0)
        z = zw + (f - zw) * (1.0 - ratio ** n) ** (1.0 / n)
        return z, 1.0 - smoothstep((ratio - 0.6) / 0.35)

    def front_depth(self, chart: np.ndarray) -> np.ndarray:
        """z of the face surface (base + relief, no hair) at deformed chart points (N, 2)."""
        chart = np.asarray(chart, dtype=float)
        z, front = self.base_front(chart[:, 0], chart[:, 1])
        neutral, cavity = self.unwarp(chart)
        return z + self.relief(neutral, cavity) * front

    def inside(self, points: np.ndarray, margin: float = 0.0) -> np.ndarray:
        """True for points inside the head (skin surface, no hair) by more than `margin` mm."""
        x, y, z = points[:, 0], points[:, 1], points[:, 2]
        p = self.profiles
        in_height = (y > p.bottom + margin) & (y < p.top - margin)
        w, zw, b = p("W", y), p("Zw", y), p("B", y)
        ratio = np.clip(np.abs(x) / np.maximum(w, 1e-6), 0.0, 1.0)
        back = zw - (zw - b) * np.sqrt(1.0 - ratio ** 2)
        front = self.front_depth(points[:, :2])
        return in_height & (np.abs(x) < w - margin) & (z > back + margin) & (z < front - margin)

    # --- parametric surface for rendering ---------------------------------------------------------
    def param_rows(self, spacing_mm: float) -> np.ndarray:
        """Heights of the grid rows, equally spaced in the arc length of the profiles."""
        p = self.profiles
        y = np.linspace(p.top, p.bottom, 2000)
        # The arc length along the column that moves most (front, side or back) sets the spacing.
        sideways = np.maximum(np.maximum(np.abs(np.diff(p("F", y))), np.abs(np.diff(p("B", y)))),
                              np.abs(np.diff(p("W", y))))
        moves = np.sqrt(np.diff(y) ** 2 + sideways ** 2)
        arc = np.concatenate([[0.0], np.cumsum(moves)])
        count = max(int(np.ceil(arc[-1] / spacing_mm)), 8)
        return np.interp(np.linspace(0.0, arc[-1], count + 1), arc, y)

    def param_cols(self, spacing_mm: float, camera: np.ndarray | None = None) -> np.ndarray:
        """Section angles t of the grid columns (0 = front, +-pi/2 = widest point, +-pi = back).

        With a camera position (head frame), only the columns that can face it are returned.
        """
        widest = float(self.profiles.W.max())
        count = max(int(np.ceil(2.0 * np.pi * widest * 1.08 / spacing_mm)), 16)
        # Half-step offset: the columns are symmetric about the mid-line, so a mirrored face
        # is sampled at mirrored points.
        cols = ((np.arange(count) + 0.5) / count * 2.0 - 1.0) * np.pi
        return facing_columns(cols, camera)

    def grid(self, rows: np.ndarray, cols: np.ndarray, camera: np.ndarray | None = None) -> HeadGrid:
        """Evaluate the surface on the (rows = heights, cols = section angles) grid.

        With a `camera` position (head frame), points whose surface faces away from it are
        dropped before the costly parts (hair, texture) are computed.
        """
        p, lay, s = self.profiles, self.layout, self.shape.scale
        w, f, b, zw, n = (p(k, rows)[:, None] for k in ("W", "F", "B", "Zw", "n"))
        t = cols[None, :]
        sin_t, cos_t = np.sin(t), np.cos(t)
        front_half = np.abs(t) <= np.pi / 2
        # |sin t|^(2/n) as exp((2/n) log|sin t|): one exp per point instead of a power.
        exponent = 2.0 / n
        with np.errstate(divide="ignore"):
            log_sin, log_cos = np.log(np.abs(sin_t)), np.log(np.abs(cos_t))
        x = np.where(front_half, np.sign(sin_t) * np.exp(exponent * log_sin), sin_t) * w
        z = np.where(front_half, zw + (f - zw) * np.exp(exponent * log_cos), zw + (zw - b) * cos_t)
        y = np.broadcast_to(rows[:, None], x.shape)
        grid_shape = x.shape
        x, y, z = x.ravel(), np.ascontiguousarray(y).ravel(), z.ravel()
        ratio = np.clip(np.abs(x) / np.maximum(np.broadcast_to(w, grid_shape).ravel(), 1e-6), 0.0, 1.0)
        front = np.where(np.broadcast_to(front_half, grid_shape).ravel(), 1.0 - smoothstep((ratio - 0.6) / 0.35), 0.0)
        chart = np.stack([x, y], axis=1)
        neutral = chart.copy()
        cavity = np.zeros(len(x))
        # Relief only where it can be non-zero: the front of the face between chin and hairline.
        face = np.nonzero((front > 0) & (y > lay["me_y"] - 20.0 * s) & (y < lay["trichion_y"] + 20.0 * s))[0]
        if len(face):
            neutral[face], cavity[face] = self.unwarp(chart[face])
            z = z.copy()
            z[face] += self.relief(neutral[face], cavity[face]) * front[face]
        points = np.stack([x, y, z], axis=1)
        # Orientation: columns run -pi..pi (right side, front, left side) and rows top to bottom,
        # so d/dcol x d/drow points inwards; flip it outwards.
        normals, stretch = grid_normals(points.reshape(grid_shape + (3,)), with_stretch=True)
        normals, stretch = -normals.reshape(-1, 3), stretch.ravel()
        if camera is not None:
            view = camera[None, :] - points
            facing = vec3.dot(normals, view) > -0.15 * row_norm(view)
            keep = np.nonzero(facing)[0]
            points, normals, chart, neutral = points[keep], normals[keep], chart[keep], neutral[keep]
            front, cavity, stretch = front[keep], cavity[keep], stretch[keep]
        hair, hair_offset = self.hair_cover(points)
        beard = self.beard_weight(neutral) * front
        offset = hair_offset
        if self.hair_style.beard_thickness_mm > 0:
            offset += beard * self.hair_style.beard_thickness_mm
        offset *= s
        points = points + normals * offset[:, None]
        # The hair layer rises over ~12 mm at the hairline: the surface stretches there.
        stretch = stretch * (1.0 + 0.5 * self.hair_style.thickness_mm * self.hair_style.density / 12.0
                             * 4.0 * hair * (1.0 - hair))
        return HeadGrid(points=points, normals=normals, chart=chart, neutral=neutral, front=front,
                        hair=hair, beard=beard, cavity=cavity, shape=grid_shape, stretch=stretch)

    # --- hair ----------------------------------------------------------------------------------
    def hairline_height(self, azimuth: np.ndarray) -> np.ndarray:
        """Height y of the hairline at a head azimuth (0 = forehead, +-pi = nape)."""
        lay, hs, s = self.layout, self.hair_style, self.shape.scale
        tr = lay["trichion_y"]
        a = np.abs(np.rad2deg(azimuth))
        knots_a = [0.0, 30.0, 48.0, 64.0, 74.0, 84.0, 100.0, 125.0, 150.0, 180.0]
        knots_y = [tr, tr - 4.0 * s, tr - (12.0 * s + hs.recession_mm), tr - (18.0 * s + 0.6 * hs.recession_mm),
                   -hs.sideburn_mm, -hs.sideburn_mm + 6.0 * s, 22.0 * s, -5.0 * s, -40.0 * s, -55.0 * s]
        return np.interp(a, knots_a, knots_y)

    def hair_cover(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Hair coverage (0..1) and the hair layer's thickness (mm) at surface points, in one pass."""
        weight, thickness = np.zeros(len(points)), np.zeros(len(points))
        if self.hair_style.density <= 0:
            return weight, thickness
        candidates = np.nonzero(points[:, 1] > -60.0 * self.shape.scale - self.hair_style.sideburn_mm)[0]
        pts = points[candidates]
        azimuth = np.arctan2(pts[:, 0], pts[:, 2] + 5.0)
        above = pts[:, 1] - self.hairline_height(azimuth)
        w = smoothstep(above / 12.0)
        side = np.exp(-((np.abs(azimuth) - np.deg2rad(85.0)) / np.deg2rad(22.0)) ** 2)
        crown = 0.3 + 0.7 * smoothstep(pts[:, 1] / 60.0)
        line = smoothstep(above / 30.0)
        weight[candidates] = w
        thickness[candidates] = (w * self.hair_style.thickness_mm * self.hair_style.density
                                 * (1.0 - 0.75 * side) * crown * line)
        return weight, thickness

    def beard_weight(self, neutral: np.ndarray) -> np.ndarray:
        """0..1 facial-hair coverage: chin, jaw, upper lip and lower cheeks, not the lips."""
        out = np.zeros(len(neutral))
        if self.hair_style.beard_density <= 0:
            return out
        lay, s = self.layout, self.shape.scale
        candidates = np.nonzero(neutral[:, 1] < lay["sn_y"])[0]
        x, y = neutral[candidates, 0], neutral[candidates, 1]
        edge = 0.5 * self.shape.zy_zy * s
        upper = np.interp(np.abs(x), [0.0, lay["al"], 0.55 * edge, edge],
                          [lay["sn_y"] - 2.0 * s, lay["sn_y"] - 6.0 * s, -40.0 * s, -12.0 * s])
        w = smoothstep((upper - y) / (6.0 * s))
        lips = bump(x, y - lay["sto_y"], lay["ch"] + 2.0 * s, 10.0 * s)
        out[candidates] = w * (1.0 - np.minimum(1.0, 1.6 * lips))
        return out

    # --- landmarks ---------------------------------------------------------------------------------
    def landmark_chart(self) -> np.ndarray:
        """Chart (x, y) of the 68 landmarks with the expression applied."""
        if self._landmark_chart is None:
            self._landmark_chart = self.warp_landmarks(self.layout["landmarks"])
        return self._landmark_chart.copy()

    def landmarks(self) -> np.ndarray:
        """The 68 landmarks (68, 3) on the deformed skin surface, head frame, mm."""
        chart = self.landmark_chart()
        return np.column_stack([chart, self.front_depth(chart)])

    def self_occluded(self, landmarks: np.ndarray, camera_position: np.ndarray, step_mm: float = 1.0,
                      margin: float = 0.4) -> np.ndarray:
        """Whether the head itself hides each landmark from a camera (both in head frame).

        Marches from each landmark towards the camera until the ray leaves the head's bounding
        box, and reports a hit when a sample lies inside the head by more than `margin`; the
        first 1.5 steps are skipped so the landmark's own surface does not count.
        """
        direction = camera_position[None, :] - landmarks
        direction = direction / row_norm(direction)[:, None]
        p = self.profiles
        half_width = float(p.W.max()) + 1.0
        lo = np.array([-half_width, p.bottom, float(p.B.min()) - 1.0])
        hi = np.array([half_width, p.top, float(max(p.F.max(), 0.0)) + 40.0 * self.shape.scale])
        # Slab test: distance along each ray to the box boundary it exits through.
        with np.errstate(divide="ignore"):
            t_lo = (lo - landmarks) / direction
            t_hi = (hi - landmarks) / direction
        exit_t = np.min(np.where(direction > 0, t_hi, np.where(direction < 0, t_lo, np.inf)), axis=1)
        reach = float(np.clip(exit_t.max(), 2.0 * step_mm, 400.0))
        steps = np.arange(1.5 * step_mm, reach + step_mm, step_mm)
        samples = landmarks[:, None, :] + steps[None, :, None] * direction[:, None, :]
        active = steps[None, :] <= exit_t[:, None]
        flat = samples.reshape(-1, 3)[active.ravel()]
        hits = np.zeros(active.shape, dtype=bool)
        hits[active] = self.inside(flat, margin=margin)
        return hits.any(axis=1)


# ---------------------------------------------------------------------------------------------
# Ears and neck
# ---------------------------------------------------------------------------------------------


@dataclass
class PartGrid:
    """Samples of a secondary surface (ear, neck, torso) on a parameter grid."""

    points: np.ndarray     # (N, 3)
    normals: np.ndarray    # (N, 3)
    param: np.ndarray      # (N, 2) the surface's own (u, v) in [0, 1]
    shape: tuple[int, int]


def ear_surface(model: HeadModel, sign: float, spacing_mm: float) -> PartGrid:
    """One pinna (sign -1: subject's right at -x, +1: left) as a thin curved shell.

    The pinna is an ellipse (length x 0.55 length) hinged at its front edge just behind the
    tragus, turned out from the side of the head by `ear_protrusion_deg`, tilted back 15 deg
    [A], with a raised helix rim and a concha bowl. Its two faces are sampled (u in [0, 1]
    runs over the outer face then back over the inner face).
    """
    s = model.shape.scale
    length = model.shape.ear_length * s
    width = 0.55 * length
    centre_y = -10.0 * s                  # top near the brows, lobule near the nose base [A]
    w_side = float(model.profiles("W", np.array([centre_y]))[0])
    hinge = np.array([sign * (w_side - 4.0 * s), centre_y, -2.0 * s])
    n_len = max(int(np.ceil(length / spacing_mm)), 6)
    n_wid = max(int(np.ceil(2.2 * width / spacing_mm)), 6)
    a = np.linspace(-1.0, 1.0, n_len)[:, None]             # along the ear (top +1)
    b = np.linspace(0.0, 2.0, n_wid)[None, :]              # 0..1 outer face front->back, 1..2 inner face back
    back = np.where(b <= 1.0, b, 2.0 - b)                  # distance from the hinge (0..1)
    outer_face = b <= 1.0
    radius = np.sqrt(np.clip(1.0 - a ** 2, 0.0, 1.0))       # half-width profile of the ellipse
    along = back * radius * width                           # mm behind the hinge line
    rim = smoothstep((back - 0.72) / 0.25) * 3.0 * s        # helix rim
    concha = bump(back - 0.35, a + 0.05, 0.35, 0.45) * 4.0 * s
    thickness = (2.0 + 3.0 * (1.0 - back)) * s
    lateral = np.where(outer_face, rim - concha, -thickness)
    # Local frame: e_len up (tilted back), e_back backwards along the head, e_out outwards.
    tilt = np.deg2rad(15.0)
    e_len = np.array([0.0, np.cos(tilt), -np.sin(tilt)])
    prot = np.deg2rad(model.shape.ear_protrusion_deg)
    e_back = np.array([sign * np.sin(prot), 0.0, -np.cos(prot)])
    e_back = vec3.normalised(e_back - e_len * vec3.dot(e_back, e_len))
    e_out = np.cross(e_len, e_back) * (-sign)
    if e_out[0] * sign < 0:
        e_out = -e_out
    pts = (hinge + (a * 0.5 * length)[..., None] * e_len + along[..., None] * e_back
           + lateral[..., None] * e_out)
    pts = np.broadcast_to(pts, (n_len, n_wid, 3)).copy()
    normals = grid_normals(pts)
    # Orient: outer face towards e_out, inner face towards -e_out.
    want = np.where(outer_face[..., None], e_out, -e_out)
    flip = np.sum(normals * want, axis=-1, keepdims=True) < 0
    normals = np.where(flip, -normals, normals)
    uv = np.stack(np.broadcast_arrays((a + 1.0) / 2.0, b / 2.0), axis=-1).reshape(-1, 2)
    return PartGrid(points=pts.reshape(-1, 3), normals=normals.reshape(-1, 3), param=uv, shape=(n_len, n_wid))


# Neck and torso dimensions [A]: neck circumference ~34-38 cm -> semi-axes ~50 x 56 mm; the neck
# axis lies ~12 mm behind the tragus line; shoulders ~2 x 190 mm wide.
NECK_SEMI = (50.0, 56.0)
NECK_CENTRE_Z = -12.0
NECK_TOP, NECK_BOTTOM = -60.0, -330.0


def neck_surface(scale: float, spacing_mm: float, lowest_y: float | None = None,
                 camera: np.ndarray | None = None) -> PartGrid:
    """The neck as an elliptic cylinder in the body frame, from inside the head down to `lowest_y`.

    It flares into the shoulders at the bottom. Rows below `lowest_y` (outside the picture)
    are not generated.
    """
    sx, sz = NECK_SEMI[0] * scale, NECK_SEMI[1] * scale
    top, bottom = NECK_TOP * scale, NECK_BOTTOM * scale
    if lowest_y is not None:
        bottom = min(max(bottom, lowest_y), top - 4.0 * spacing_mm)
    n_around = max(int(np.ceil(np.pi * (sx + sz) / spacing_mm)), 16)
    n_down = max(int(np.ceil((top - bottom) / spacing_mm)), 4)
    y = np.linspace(top, bottom, n_down)[:, None]
    t = facing_columns((np.arange(n_around) + 0.5) / n_around * 2.0 * np.pi - np.pi, camera)[None, :]
    flare = 1.0 + 0.25 * smoothstep((top - 150.0 * scale - y) / (120.0 * scale))
    # Narrower under the jaw than at its base (the sternocleidomastoids fan out downwards).
    taper = 0.88 + 0.12 * smoothstep((top - y) / (110.0 * scale))
    x = sx * np.sin(t) * flare * taper
    z = NECK_CENTRE_Z * scale + sz * np.cos(t) * flare
    pts = np.stack(np.broadcast_arrays(x, y, z), axis=-1)
    # Normals of the elliptic section (the gentle flare is ignored).
    nx, nz = np.sin(t) / sx, np.cos(t) / sz
    length = np.sqrt(nx ** 2 + nz ** 2)
    normals = np.stack(np.broadcast_arrays(nx / length, 0.0 * y, nz / length), axis=-1)
    uv = np.stack(np.broadcast_arrays((t + np.pi) / (2 * np.pi), (top - y) / (top - bottom)), axis=-1)
    return PartGrid(points=pts.reshape(-1, 3), normals=normals.reshape(-1, 3), param=uv.reshape(-1, 2),
                    shape=pts.shape[:2])
