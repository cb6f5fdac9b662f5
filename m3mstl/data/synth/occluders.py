"""Occluders of SynthTFD68: geometry in the head frame and the temperature the camera reads.
("spec N.N": section N.N of docs/thermal_physics.md.)

Every occluder is an `OccluderSpec` (kind + shape/temperature parameters), so a caller can add
or remove one with `dataclasses.replace(spec, occluders=...)` and re-render the same face. Its
geometry is built around the face it is put on (`build_occluder`), which returns surface
samples, their apparent temperatures and the occluder's effect on the skin beneath it.

Apparent temperatures follow the radiometric mixing of spec 2.1,
    apparent = eps * T_surface + (1 - eps) * T_ambient,
with surface temperatures between the skin and the room air:

* glasses / sunglasses (2.2): glass is opaque in LWIR; lens physical temperature
  T_a + f (T_periorbital - T_a) with f in 0.2..0.55 (the spec's T_a + 2..7 deg C at 23 deg C,
  scaled with the skin-to-air difference so a lens stays the coldest thing on the face in a warm
  room too); eps 0.84 (float glass) or 0.90 (PMMA) (LBNL THERM table). Acetate frames eps ~0.9,
  metal frames reflect the room. A mask below fogs / warms the lower rim (2.3).
* mask (2.3): outer surface T_a + (0.35..0.6)(T_skin - T_a), breathing-synchronous +0.3..1 deg C
  over nose and mouth, warm leakage along the upper edge; the skin beneath warms (Scarano).
* scarf, hat (2.4, T-FAKE clothing/headwear 0.4-0.6 of the skin level): T_a + f (T_skin - T_a).
* hand (2.4 [A]): palm and back 30-34 deg C, fingertips 1-5 deg C colder, ambient dependent.
* hair fringe (2.4, T-FAKE hair ~3 K under skin): hair surface between skin and air.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from m3mstl.data.synth.face3d import HeadGrid, HeadModel, bump, smoothstep
from m3mstl.data.synth.thermal import SkinField, hash_noise, smooth_texture
from m3mstl.core import vec3

OCCLUDER_KINDS: tuple[str, ...] = ("glasses", "sunglasses", "mask", "scarf", "hand", "hair_fringe", "hat")
MAX_OCCLUDERS = 8  # the occluder mask is a uint8 bitmask: bit k = occluder k


@dataclass(frozen=True)
class OccluderSpec:
    """One occluder: its kind, the parameters its builder reads, and a texture seed."""

    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in OCCLUDER_KINDS:
            raise ValueError(f"unknown occluder kind {self.kind!r}; expected one of {OCCLUDER_KINDS}")


@dataclass
class OccluderPiece:
    """Surface samples of (a piece of) an occluder with apparent temperatures."""

    points: np.ndarray          # (N, 3) in `frame`
    normals: np.ndarray         # (N, 3)
    temperature: np.ndarray     # (N,) apparent deg C (what the camera reads)
    frame: str = "head"         # "head" or "body" (moves with the torso, like the neck)
    two_sided: bool = True      # thin sheets are seen from both sides
    stretch: np.ndarray | None = None  # (N,) mm to the farther neighbour sample, if known


@dataclass
class OccluderGeometry:
    """A built occluder: pieces, the skin warming it causes, and a summary for the annotation."""

    kind: str
    pieces: list[OccluderPiece]
    skin_effect: Callable[[np.ndarray, np.ndarray], np.ndarray] | None
    info: dict[str, Any]


# ---------------------------------------------------------------------------------------------
# Sampling parameters (used by the spec sampler with the priors)
# ---------------------------------------------------------------------------------------------


def _u(rng: np.random.Generator, bounds: Any) -> float:
    lo, hi = bounds
    return float(rng.uniform(lo, hi))


def sample_occluder(kind: str, rng: np.random.Generator, priors: dict[str, Any]) -> OccluderSpec:
    """Draw the parameters of one occluder of `kind` from the priors' `occluders.<kind>` block."""
    cfg = priors["occluders"][kind]
    seed = int(rng.integers(0, 2**31 - 1))
    if kind in ("glasses", "sunglasses"):
        params = {
            "lens_half_width": _u(rng, cfg["lens_half_width_mm"]),
            "lens_half_height": _u(rng, cfg["lens_half_height_mm"]),
            "lens_exponent": _u(rng, cfg["lens_exponent"]),
            "rim_mm": _u(rng, cfg["rim_mm"]),
            "vertex_mm": _u(rng, cfg["vertex_distance_mm"]),
            "wrap_deg": _u(rng, cfg["wrap_deg"]),
            "tilt_deg": _u(rng, cfg["pantoscopic_tilt_deg"]),
            "raise_mm": _u(rng, cfg["raise_mm"]),
            "lens_fraction": _u(rng, cfg["lens_temperature_fraction"]),
            "lens_emissivity": float(rng.choice(cfg["lens_emissivity"])),
            "metal_frame": bool(rng.random() < cfg["metal_frame_probability"]),
            "frame_fraction": _u(rng, cfg["frame_temperature_fraction"]),
        }
    elif kind == "mask":
        cloth = bool(rng.random() < cfg["cloth_probability"])
        params = {
            "material": "cloth" if cloth else "surgical",
            "fraction": _u(rng, cfg["cloth_temperature_fraction"] if cloth else cfg["surgical_temperature_fraction"]),
            "breathing_c": _u(rng, cfg["breathing_modulation_c"]),
            "leak": _u(rng, cfg["top_leak_fraction"]),
            "skin_warming_c": _u(rng, cfg["skin_warming_c"]),
            "top_mm": _u(rng, cfg["top_below_nasion_mm"]),
            "gap_mm": _u(rng, cfg["gap_mm"]),
        }
    elif kind == "scarf":
        params = {
            "thickness_mm": _u(rng, cfg["thickness_mm"]),
            "fraction": _u(rng, cfg["temperature_fraction"]),
            "covers_face": bool(rng.random() < cfg["covers_face_probability"]),
            "cover_top": _u(rng, cfg["cover_top"]),
            "skin_warming_c": _u(rng, cfg["skin_warming_c"]),
        }
    elif kind == "hand":
        placements = list(cfg["placements"])
        weights = np.array([cfg["placements"][p] for p in placements], dtype=float)
        params = {
            "placement": str(rng.choice(placements, p=weights / weights.sum())),
            "side": float(rng.choice([-1.0, 1.0])),
            "size": _u(rng, cfg["size"]),
            "angle_deg": _u(rng, cfg["finger_angle_deg"]),
            "lift_mm": _u(rng, cfg["lift_mm"]),
            "shift_x_mm": _u(rng, cfg["shift_mm"]),
            "shift_y_mm": _u(rng, cfg["shift_mm"]),
            "palm_c": _u(rng, cfg["palm_c"]),
            "fingertip_drop_c": _u(rng, cfg["fingertip_drop_c"]),
            "sleeve": bool(rng.random() < cfg["sleeve_probability"]),
            "sleeve_fraction": _u(rng, cfg["sleeve_temperature_fraction"]),
            "skin_warming_c": _u(rng, cfg["skin_warming_c"]),
        }
    elif kind == "hair_fringe":
        params = {
            "bottom_mm": _u(rng, cfg["bottom_above_brows_mm"]),
            "half_width_mm": _u(rng, cfg["half_width_mm"]),
            "slope": _u(rng, cfg["slope"]),
            "thickness_mm": _u(rng, cfg["thickness_mm"]),
            "insulation": _u(rng, cfg["insulation"]),
        }
    elif kind == "hat":
        params = {
            "style": "cap" if rng.random() < cfg["cap_probability"] else "beanie",
            "edge_mm": _u(rng, cfg["edge_above_brows_mm"]),
            "thickness_mm": _u(rng, cfg["thickness_mm"]),
            "fraction": _u(rng, cfg["temperature_fraction"]),
            "brim_mm": _u(rng, cfg["brim_mm"]),
            "brim_tilt_deg": _u(rng, cfg["brim_tilt_deg"]),
        }
    else:  # pragma: no cover - OccluderSpec validates kinds
        raise ValueError(kind)
    return OccluderSpec(kind=kind, params=params, seed=seed)


# ---------------------------------------------------------------------------------------------
# Geometry helpers
# ---------------------------------------------------------------------------------------------


def _select(grid: HeadGrid, keep: np.ndarray) -> HeadGrid:
    """Subset of a head grid (flattened fields only; the grid shape is dropped)."""
    return HeadGrid(points=grid.points[keep], normals=grid.normals[keep], chart=grid.chart[keep],
                    neutral=grid.neutral[keep], front=grid.front[keep], hair=grid.hair[keep],
                    beard=grid.beard[keep], cavity=grid.cavity[keep], shape=(int(keep.sum()), 1),
                    stretch=None if grid.stretch is None else grid.stretch[keep])


def _head_rows(model: HeadModel, spacing: float, y_min: float, y_max: float) -> np.ndarray:
    rows = model.param_rows(spacing)
    rows = rows[(rows >= y_min) & (rows <= y_max)]
    if len(rows) < 2:
        rows = np.linspace(y_max, y_min, 2)
    return rows


def _head_patch(ctx: "BuildContext", y_min: float, y_max: float) -> HeadGrid:
    """The head surface (with hair) between two heights, on the renderer's grid, camera side only."""
    model = ctx.model
    return model.grid(_head_rows(model, ctx.spacing, y_min, y_max), model.param_cols(ctx.spacing, ctx.camera),
                      camera=ctx.camera)


def _section_angle(grid: HeadGrid) -> np.ndarray:
    """Azimuth of points around the head's vertical axis (0 = front)."""
    return np.arctan2(grid.points[:, 0], grid.points[:, 2] + 5.0)


def _skin_under(skin: SkinField, grid: HeadGrid, stride: int = 5) -> np.ndarray:
    """Bare-skin temperature beneath head-grid points (what an occluder sits on).

    Evaluated on every `stride`-th point and interpolated along the point order (the grid's
    rows): an occluder only follows the skin beneath it over centimetres, so this is ample.
    """
    n = len(grid.points)
    picks = np.unique(np.append(np.arange(0, n, stride), n - 1)) if n else np.arange(0)
    values = skin.face(grid.points[picks], grid.neutral[picks], grid.front[picks], grid.hair[picks],
                       grid.beard[picks], grid.cavity[picks], include_hair=False)
    return np.interp(np.arange(n), picks, values) if n else values


def _frame(e_up: np.ndarray, e_normal: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = vec3.normalised(e_normal)
    up = vec3.normalised(e_up - n * vec3.dot(e_up, n))
    side = np.cross(up, n)
    return up, side, n


def _ellipsoid(centre: np.ndarray, axes: list[np.ndarray], spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """Points and outward normals of an ellipsoid with (scaled) axis vectors a, b, c."""
    a, b, c = axes
    radius = max(vec3.norm(a), vec3.norm(b), vec3.norm(c))
    n_el = max(int(np.ceil(np.pi * radius / spacing)), 6)
    n_az = max(int(np.ceil(2 * np.pi * radius / spacing)), 8)
    el = np.linspace(-np.pi / 2, np.pi / 2, n_el)[:, None]
    az = np.linspace(0.0, 2 * np.pi, n_az, endpoint=False)[None, :]
    cu, su = np.cos(el) * np.cos(az), np.cos(el) * np.sin(az)
    sv = np.broadcast_to(np.sin(el), cu.shape)
    pts = centre + cu[..., None] * a + su[..., None] * b + sv[..., None] * c
    # Normal of x'A^-T: gradient of the implicit form in the axis frame.
    inv = vec3.inverse(np.stack([a, b, c], axis=1))
    local = np.stack([cu, su, sv], axis=-1).reshape(-1, 3)
    normals = vec3.normalised(vec3.transform(inv.T, local))  # local @ inv
    return pts.reshape(-1, 3), normals


def _capsule(p0: np.ndarray, p1: np.ndarray, radius: float, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """Points and outward normals of a capsule (cylinder with round ends) from p0 to p1."""
    axis = p1 - p0
    length = float(vec3.norm(axis))
    e = axis / max(length, 1e-9)
    helper = np.array([1.0, 0.0, 0.0]) if abs(e[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    u = np.cross(e, helper)
    u = vec3.normalised(u)
    v = np.cross(e, u)
    n_az = max(int(np.ceil(2 * np.pi * radius / spacing)), 8)
    az = np.linspace(0.0, 2 * np.pi, n_az, endpoint=False)
    ring = np.cos(az)[:, None] * u + np.sin(az)[:, None] * v        # (n_az, 3)
    n_len = max(int(np.ceil(length / spacing)), 2)
    s = np.linspace(0.0, length, n_len)
    body = p0 + s[:, None, None] * e + radius * ring[None]           # (n_len, n_az, 3)
    body_n = np.broadcast_to(ring[None], body.shape)
    n_cap = max(int(np.ceil(0.5 * np.pi * radius / spacing)), 3)
    theta = np.linspace(0.0, np.pi / 2, n_cap)[:, None, None]
    caps, caps_n = [], []
    for end, sign in ((p0, -1.0), (p1, 1.0)):
        normal = np.cos(theta) * ring[None] + sign * np.sin(theta) * e
        caps.append(end + radius * normal)
        caps_n.append(normal)
    pts = np.concatenate([body.reshape(-1, 3)] + [c.reshape(-1, 3) for c in caps])
    normals = np.concatenate([body_n.reshape(-1, 3)] + [c.reshape(-1, 3) for c in caps_n])
    return pts, normals


def _side_x(model: HeadModel, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """|x| of the head's side (skin, no hair) at height y and depth z."""
    p = model.profiles
    w, f, b, zw, n = (p(k, y) for k in ("W", "F", "B", "Zw", "n"))
    front = z >= zw
    rf = np.clip((z - zw) / np.maximum(f - zw, 1e-6), 0.0, 1.0)
    rb = np.clip((zw - z) / np.maximum(zw - b, 1e-6), 0.0, 1.0)
    return np.where(front, w * (1.0 - rf ** n) ** (1.0 / n), w * np.sqrt(1.0 - rb ** 2))


def _surface_normal(model: HeadModel, chart: np.ndarray) -> np.ndarray:
    """Face normal at chart points from the closed-form depth (finite differences)."""
    h = 1.0
    z0 = model.front_depth(chart)
    zx = model.front_depth(chart + [h, 0.0])
    zy = model.front_depth(chart + [0.0, h])
    n = np.column_stack([-(zx - z0) / h, -(zy - z0) / h, np.ones(len(chart))])
    return vec3.normalised(n)


# ---------------------------------------------------------------------------------------------
# Builders
# ---------------------------------------------------------------------------------------------


@dataclass
class BuildContext:
    """What every builder needs besides its own parameters."""

    model: HeadModel
    skin: SkinField
    spacing: float                  # surface sampling distance (mm)
    ambient_c: float
    mask_worn: bool = False         # glasses fog / warm at the lower rim over a mask (2.3)
    camera: np.ndarray | None = None  # camera position (head frame): patches drop far-side points


def _glasses(spec: OccluderSpec, ctx: BuildContext) -> OccluderGeometry:
    p, model, lay = spec.params, ctx.model, ctx.model.layout
    s = model.shape.scale
    a, b, expo, rim = p["lens_half_width"] * s, p["lens_half_height"] * s, p["lens_exponent"], p["rim_mm"]
    pupil = lay["pupil_x"]
    centre_y = p["raise_mm"] * s
    bridge_half = max(pupil - a, 5.0 * s)
    centre_x = bridge_half + a
    # Lens plane: the vertex distance in front of the eye, and clear of brows and cheeks.
    gx, gy = np.meshgrid(np.linspace(-a - rim, a + rim, 9), np.linspace(-b - rim, b + rim, 7))
    footprint = np.concatenate([np.column_stack([sgn * centre_x + gx.ravel(), centre_y + gy.ravel()])
                                for sgn in (-1, 1)])
    eye_z = float(model.front_depth(np.array([[pupil, 0.0]]))[0])
    plane_z = max(eye_z + p["vertex_mm"], float(model.front_depth(footprint).max()) + 3.0)
    amb = ctx.ambient_c
    t_skin = float(np.mean([ctx.skin.t["periorbital"], ctx.skin.t["skin"]]))
    lens_phys = amb + p["lens_fraction"] * (t_skin - amb)
    eps = p["lens_emissivity"]
    lens_app = eps * lens_phys + (1.0 - eps) * amb                           # spec 2.1
    frame_app = amb + (0.1 if p["metal_frame"] else p["frame_fraction"]) * (t_skin - amb)

    pieces, spacing = [], min(ctx.spacing, 0.8 * max(rim, 1.0))
    wrap, tilt = np.deg2rad(p["wrap_deg"]), np.deg2rad(p["tilt_deg"])
    for sgn in (-1.0, 1.0):
        n_x = max(int(np.ceil(2 * (a + rim) / spacing)), 4)
        n_y = max(int(np.ceil(2 * (b + rim) / spacing)), 4)
        lx, ly = np.meshgrid(np.linspace(-a - rim, a + rim, n_x), np.linspace(-b - rim, b + rim, n_y))
        lx, ly = lx.ravel(), ly.ravel()
        radius = (np.abs(lx / a) ** expo + np.abs(ly / b) ** expo) ** (1.0 / expo)
        rim_radius = (np.abs(lx / (a + rim)) ** expo + np.abs(ly / (b + rim)) ** expo) ** (1.0 / expo)
        keep = rim_radius <= 1.0
        lx, ly, radius = lx[keep], ly[keep], radius[keep]
        is_lens = radius < 1.0
        # Wrap: the outer edge swings back; tilt: the bottom comes towards the face.
        outer = sgn * lx                                        # + towards the temple
        z = plane_z - np.sin(wrap) * (outer + a) - np.sin(tilt) * (-ly)
        pts = np.column_stack([sgn * centre_x + lx, centre_y + ly, z])
        normal = np.array([sgn * np.sin(wrap), -np.sin(tilt), 1.0])
        normals = np.broadcast_to(vec3.normalised(normal), pts.shape).copy()
        temp = np.where(is_lens, lens_app, frame_app)
        if ctx.mask_worn:
            # Exhaled air leaking at the mask's top edge warms the lower part of the lens (2.3).
            fog = smoothstep((-ly - 0.2 * b) / (0.8 * b)) * 0.35 * (t_skin - lens_app)
            temp = temp + np.where(is_lens, fog, 0.0)
        temp = temp + np.where(is_lens, 0.15 * smoothstep(1.0 - radius), 0.0)  # eye-side warmth, centre
        pieces.append(OccluderPiece(pts, normals, temp))
        # Temple arm: from the hinge back along the side of the head to the ear.
        hinge = np.array([sgn * (centre_x + a + rim), centre_y + 0.45 * b, plane_z - np.sin(wrap) * 2 * a])
        zs = np.arange(hinge[2], -8.0 * s, -spacing)
        bar = np.arange(-1.5, 1.6, min(spacing, 1.5))
        zz, yy = np.meshgrid(zs, hinge[1] + bar)
        zz, yy = zz.ravel(), yy.ravel()
        # The arm runs straight back from the hinge and bows out around the head and its hair.
        side = _side_x(model, yy, zz)
        _, hair = model.hair_cover(np.column_stack([sgn * side, yy, zz]))
        xs = np.maximum(abs(hinge[0]), side + hair * s + 2.5 * s)
        arm = np.column_stack([sgn * xs, yy, zz])
        arm_n = np.broadcast_to(np.array([sgn, 0.0, 0.0]), arm.shape).copy()
        warm_end = smoothstep((-zz + 10.0) / 40.0) * 0.3 * (t_skin - frame_app)
        pieces.append(OccluderPiece(arm, arm_n, frame_app + warm_end))
    # Bridge over the nose.
    bx = np.arange(-bridge_half - 1.0, bridge_half + 1.0, min(spacing, 1.0))
    by = np.arange(-1.2, 1.3, min(spacing, 1.0))
    gx, gy = np.meshgrid(bx, by)
    bridge_y = centre_y + 0.35 * b
    pts = np.column_stack([gx.ravel(), bridge_y + gy.ravel(), np.full(gx.size, plane_z + 0.5)])
    pieces.append(OccluderPiece(pts, np.tile([0.0, 0.0, 1.0], (len(pts), 1)), np.full(len(pts), frame_app)))
    info = {"apparent_temperature_c": lens_app, "lens_temperature_c": lens_phys, "frame_temperature_c": frame_app,
            "lens_emissivity": eps, "frame": "metal" if p["metal_frame"] else "acetate"}
    return OccluderGeometry(spec.kind, pieces, None, info)


def _mask(spec: OccluderSpec, ctx: BuildContext) -> OccluderGeometry:
    p, model, lay = spec.params, ctx.model, ctx.model.layout
    s = model.shape.scale
    top = lay["nasion_y"] - p["top_mm"] * s
    grid = _head_patch(ctx, model.profiles.bottom, top + 2.0)
    x, y, z = grid.points[:, 0], grid.points[:, 1], grid.points[:, 2]
    edge = np.maximum(top - 0.009 * x ** 2, lay["sn_y"] - 12.0 * s)
    w = model.profiles("W", y)
    ratio = np.abs(x) / np.maximum(w, 1e-6)
    zw = model.profiles("Zw", y)
    on_face = (z >= zw) & (ratio < 0.93) & (y > lay["me_y"] - 3.0 * s)
    chin_z = float(model.landmarks()[8, 2])   # the mask wraps ~4 cm under the chin
    under_chin = (y <= lay["me_y"] + 20.0 * s) & (z > chin_z - 38.0 * s)
    keep = (y < edge) & (on_face | under_chin)
    g = _select(grid, keep)
    edge = edge[keep]
    # Drape: the mask hangs from the nose tip over the lips, flatter for pleated surgical masks.
    tip = model.landmarks()[30]
    curv_x = 0.011 if p["material"] == "surgical" else 0.017
    dy = g.points[:, 1] - tip[1]
    hull = tip[2] + p["gap_mm"] - curv_x * g.points[:, 0] ** 2 - np.where(dy > 0, 0.03, 0.0045) * dy ** 2
    pts = g.points.copy()
    facing = g.points[:, 2] >= model.profiles("Zw", g.points[:, 1])
    # The fabric bridges the hollows between nose, lips and chin; at the cheeks it lies on the skin.
    lift = np.maximum(hull - (pts[:, 2] + p["gap_mm"]), 0.0) * (1.0 - smoothstep((np.abs(pts[:, 0]) - 22.0 * s) / (28.0 * s)))
    # Facing the camera, push along z (a push along the normals would open seams on the nose
    # ridge); under the chin, along the normals.
    pts[:, 2] += np.where(facing, p["gap_mm"] + lift, 0.0)
    pts += g.normals * np.where(facing, 0.5, p["gap_mm"] + 1.0)[:, None]
    if p["material"] == "surgical":
        pleat = np.sin(2 * np.pi * (g.points[:, 1] - top) / (13.0 * s))
        pts[:, 2] += 0.8 * pleat * facing
    # The fabric averages the skin beneath it over centimetres (it touches the nose and chin,
    # not the hollows): use a smoothed skin reference rather than the point value.
    skin_point = _skin_under(ctx.skin, g)
    skin = float(np.median(skin_point)) + 0.3 * (skin_point - float(np.median(skin_point)))
    amb = ctx.ambient_c
    temp = amb + p["fraction"] * (skin - amb)
    # Breathing modulation over nose and mouth (2.3) and warm leakage along the top edge.
    nx, ny = g.points[:, 0], g.points[:, 1]
    breath_zone = bump(nx, ny - 0.5 * (lay["sn_y"] + lay["sto_y"]), 40.0 * s, 30.0 * s)
    wave = ctx.skin.breath / max(abs(ctx.skin.cond.breathing_amplitude_c), 1e-6)
    temp = temp + p["breathing_c"] * (wave + 0.5) * breath_zone
    below_edge = edge - ny
    leak = p["leak"] * np.exp(-np.maximum(below_edge, 0.0) / 8.0)
    side_leak = 0.3 * p["leak"] * smoothstep((ratio[keep] - 0.8) / 0.13)
    temp = temp + np.maximum(leak, side_leak) * (skin - temp)
    if p["material"] == "surgical":
        temp = temp + 0.15 * np.sin(2 * np.pi * (ny - top) / (13.0 * s))
    else:
        temp = temp + smooth_texture(g.points, spec.seed, 0.12, (4.0, 9.0), waves=8)
    piece = OccluderPiece(pts, g.normals, temp, two_sided=True, stretch=g.stretch)

    warming = p["skin_warming_c"]

    def skin_effect(points: np.ndarray, neutral: np.ndarray) -> np.ndarray:
        px, py = points[:, 0], points[:, 1]
        e = np.maximum(top - 0.009 * px ** 2, lay["sn_y"] - 12.0 * s)
        under = smoothstep((e - py) / 4.0) * (1.0 - smoothstep((np.abs(px) / np.maximum(model.profiles("W", py), 1e-6) - 0.85) / 0.1))
        above = np.exp(-np.maximum(py - e, 0.0) / 8.0) * (py >= e) * 0.5 * p["leak"]
        return warming * under + above * (1.0 - under)

    info = {"apparent_temperature_c": float(np.median(temp)), "material": p["material"]}
    return OccluderGeometry(spec.kind, [piece], skin_effect, info)


def _scarf(spec: OccluderSpec, ctx: BuildContext) -> OccluderGeometry:
    from m3mstl.data.synth.face3d import NECK_BOTTOM, NECK_CENTRE_Z, NECK_SEMI

    p, model, lay = spec.params, ctx.model, ctx.model.layout
    s, amb = model.shape.scale, ctx.ambient_c
    thick = p["thickness_mm"] * s
    neck_t = ctx.skin.t["neck"]
    # Around the neck (body frame): a bulky tube from below the crop up under the jaw.
    sx, sz = NECK_SEMI[0] * s + thick, NECK_SEMI[1] * s + thick
    top_y, bottom_y = lay["me_y"] - 4.0 * s, NECK_BOTTOM * s * 0.8
    n_around = max(int(np.ceil(np.pi * (sx + sz) / ctx.spacing)), 16)
    n_down = max(int(np.ceil((top_y - bottom_y) / ctx.spacing)), 4)
    t = np.linspace(-np.pi, np.pi, n_around, endpoint=False)[None, :]
    yy = np.linspace(top_y, bottom_y, n_down)[:, None]
    fold = 1.0 + 0.06 * np.sin(3.0 * t + 0.05 * yy) + 0.04 * np.sin(7.0 * t - 0.11 * yy)
    # The top rises at the back and sides (it is wrapped around the neck, not cut flat).
    top_here = top_y + 25.0 * s * (1.0 - np.cos(t)) * 0.5
    yy = np.minimum(yy, top_here)
    x = sx * np.sin(t) * fold
    z = NECK_CENTRE_Z * s + sz * np.cos(t) * fold
    pts = np.stack(np.broadcast_arrays(x, yy, z), axis=-1).reshape(-1, 3)
    normals = np.stack(np.broadcast_arrays(np.sin(t), 0.0 * yy, np.cos(t)), axis=-1).reshape(-1, 3)
    knit = smooth_texture(pts, spec.seed, 0.25, (6.0, 20.0), waves=8) + 0.15 * hash_noise(pts, spec.seed, 2.0)
    temp = amb + p["fraction"] * (neck_t - amb) + knit
    near_face = smoothstep((pts[:, 1] - (top_y - 30.0 * s)) / (30.0 * s)) * smoothstep(pts[:, 2] / 30.0)
    temp = temp + 0.3 * near_face * (neck_t - temp)
    pieces = [OccluderPiece(pts, normals, temp, frame="body", two_sided=False)]
    cover_top = None
    if p["covers_face"]:
        # Pulled up over the chin (cover_top 0) or up to the nose (cover_top 1).
        cover_top = lay["me_y"] + 20.0 * s + p["cover_top"] * (lay["sn_y"] - 4.0 * s - lay["me_y"] - 20.0 * s)
        grid = _head_patch(ctx, model.profiles.bottom, cover_top)
        gx, gy, gz = grid.points.T
        ratio = np.abs(gx) / np.maximum(model.profiles("W", gy), 1e-6)
        zw = model.profiles("Zw", gy)
        keep = (gy < cover_top) & (((gz >= zw) & (ratio < 0.97)) | (gy <= lay["me_y"] + 20.0 * s))
        g = _select(grid, keep)
        wrinkle = 1.0 + 0.15 * np.sin(0.35 * g.points[:, 0]) * np.sin(0.2 * g.points[:, 1])
        face_pts = g.points + g.normals * (0.8 * thick * wrinkle)[:, None]
        skin = _skin_under(ctx.skin, g)
        ftemp = amb + p["fraction"] * (skin - amb) + smooth_texture(face_pts, spec.seed + 1, 0.25, (6.0, 20.0), 8)
        mouth = bump(g.points[:, 0], g.points[:, 1] - lay["sto_y"], 35.0 * s, 25.0 * s)
        ftemp = ftemp + 0.35 * mouth * (skin - ftemp)   # breath warms the wool in front of the mouth
        pieces.append(OccluderPiece(face_pts, g.normals, ftemp, two_sided=False, stretch=g.stretch))
    warming = p["skin_warming_c"]

    def skin_effect(points: np.ndarray, neutral: np.ndarray) -> np.ndarray:
        if cover_top is None:
            return np.zeros(len(points))
        return warming * smoothstep((cover_top - points[:, 1]) / 5.0)

    info = {"apparent_temperature_c": float(np.median(temp)), "covers_face": bool(p["covers_face"])}
    return OccluderGeometry(spec.kind, pieces, skin_effect, info)


# Where a hand rests (chart x, y relative to the layout) and which way its fingers point.
_HAND_PLACEMENTS = {
    "cheek": (lambda lay: (48.0, -40.0), 10.0),
    "chin": (lambda lay: (0.0, lay["me_y"] + 8.0), 80.0),
    "mouth": (lambda lay: (0.0, lay["sto_y"] - 4.0), 85.0),
    "eye": (lambda lay: (lay["pupil_x"], 8.0), 15.0),
    "forehead": (lambda lay: (18.0, 38.0), 70.0),
    "jaw": (lambda lay: (50.0, -85.0), 30.0),
}


def _hand(spec: OccluderSpec, ctx: BuildContext) -> OccluderGeometry:
    p, model, lay = spec.params, ctx.model, ctx.model.layout
    s, amb, sgn = model.shape.scale, ctx.ambient_c, p["side"]
    where, base_angle = _HAND_PLACEMENTS[p["placement"]]
    tx, ty = where(lay)
    target = np.array([[sgn * tx * s + p["shift_x_mm"], ty * (1.0 if ty < 0 else s) + p["shift_y_mm"]]])
    normal = _surface_normal(model, target)[0]
    surface = np.array([target[0, 0], target[0, 1], float(model.front_depth(target)[0])])
    hs = p["size"] * s
    palm_half = np.array([46.0, 41.0, 13.0]) * hs          # length, width, thickness [A]
    angle = np.deg2rad(sgn * (base_angle + p["angle_deg"]))
    up0 = np.array([-np.sin(angle), np.cos(angle), 0.0])
    up, side, n = _frame(up0, normal)
    centre = surface + n * (palm_half[2] + p["lift_mm"])
    pieces = []
    # The hand is nearer the camera than the face the spacing was set for: sample it finer.
    spacing = 0.7 * ctx.spacing
    pts, nrm = _ellipsoid(centre, [up * palm_half[0], side * palm_half[1], n * palm_half[2]], spacing)
    dist = np.zeros(len(pts))
    parts = [(pts, nrm, dist)]
    finger_len = np.array([78.0, 84.0, 80.0, 66.0]) * hs
    offsets = np.array([-0.62, -0.2, 0.2, 0.6]) * palm_half[1]
    for k, (length, off) in enumerate(zip(finger_len, offsets)):
        fan = np.deg2rad((k - 1.5) * 5.0)
        direction = np.cos(fan) * up + np.sin(fan) * side - 0.12 * n   # fingers curl towards the face
        direction = vec3.normalised(direction)
        start = centre + up * (palm_half[0] * 0.8) + side * off
        fp, fn = _capsule(start, start + direction * length, 8.3 * hs, spacing)
        parts.append((fp, fn, np.clip(vec3.dot(fp - start, direction) / length, 0.0, 1.0)))
    thumb_start = centre - side * sgn * palm_half[1] * 0.7 - up * palm_half[0] * 0.2
    thumb_dir = up * 0.6 - side * sgn * 0.8 - n * 0.1
    thumb_dir = vec3.normalised(thumb_dir)
    tp, tn = _capsule(thumb_start, thumb_start + thumb_dir * 58.0 * hs, 10.0 * hs, spacing)
    parts.append((tp, tn, np.clip(vec3.dot(tp - thumb_start, thumb_dir) / (58.0 * hs), 0.0, 1.0)))
    hand_pts = np.concatenate([q[0] for q in parts])
    hand_n = np.concatenate([q[1] for q in parts])
    tipness = np.concatenate([q[2] for q in parts])
    # Palm and back 30-34 deg C; fingertips colder (vasoconstriction, 2.4 [A]).
    palm = p["palm_c"] + 0.3 * (amb - 23.0)
    temp = palm - p["fingertip_drop_c"] * tipness ** 1.3
    temp = np.maximum(temp, amb + 1.0) + smooth_texture(hand_pts, spec.seed, 0.15, (10.0, 30.0))
    pieces.append(OccluderPiece(hand_pts, hand_n, temp, two_sided=False))
    # Forearm: from the wrist down and away from the face, out of the picture.
    wrist = centre - up * palm_half[0] * 0.95
    # The forearm leaves the wrist downwards and out to the hand's side, towards the camera:
    # it never crosses the face whichever way the fingers point.
    outwards = np.array([sgn, 0.0, 0.0])
    down = -0.45 * up + 0.45 * outwards + np.array([0.0, -0.9, 0.0]) + 0.35 * n
    down = vec3.normalised(down)
    ap, an = _capsule(wrist, wrist + down * 260.0 * s, 31.0 * hs, 0.6 * ctx.spacing)
    if p["sleeve"]:
        arm_t = amb + p["sleeve_fraction"] * (palm - amb) + 0.2 * hash_noise(ap, spec.seed, 3.0)
        arm_t = np.where(vec3.dot(ap - wrist, down) < 25.0 * hs, palm - 0.5, arm_t)
    else:
        arm_t = np.full(len(ap), palm - 0.5) + smooth_texture(ap, spec.seed + 1, 0.15, (20.0, 50.0))
    pieces.append(OccluderPiece(ap, an, arm_t, two_sided=False))
    warming = p["skin_warming_c"]
    footprint_r = palm_half[:2].mean() * 1.1

    def skin_effect(points: np.ndarray, neutral: np.ndarray) -> np.ndarray:
        if p["lift_mm"] > 6.0:
            return np.zeros(len(points))
        d = vec3.norm(points - surface)
        return warming * (1.0 - smoothstep((d - 0.7 * footprint_r) / (0.5 * footprint_r)))

    info = {"apparent_temperature_c": float(palm), "placement": p["placement"],
            "side": "left" if sgn > 0 else "right"}
    return OccluderGeometry(spec.kind, pieces, skin_effect, info)


def _hair_fringe(spec: OccluderSpec, ctx: BuildContext) -> OccluderGeometry:
    p, model, lay = spec.params, ctx.model, ctx.model.layout
    s, amb = model.shape.scale, ctx.ambient_c
    brow_y = float(lay["landmarks"][17:27, 1].mean())
    bottom0 = brow_y + p["bottom_mm"] * s
    grid = _head_patch(ctx, bottom0 - 30.0, lay["trichion_y"] + 25.0 * s)
    x, y, z = grid.points.T
    rng_phase = (spec.seed % 997) / 997.0 * 2 * np.pi
    jag = 3.0 * np.abs(np.sin(x / 3.3 + rng_phase)) + 1.8 * np.sin(x / 1.9 + 2 * rng_phase)
    bottom = bottom0 + p["slope"] * x - jag
    zw = model.profiles("Zw", y)
    keep = (y > bottom) & (np.abs(x) < p["half_width_mm"] * s) & (z > zw)
    g = _select(grid, keep)
    fall = smoothstep((g.points[:, 1] - bottom[keep]) / 20.0)
    pts = g.points + g.normals * (p["thickness_mm"] * (0.4 + 0.6 * fall))[:, None]
    skin = _skin_under(ctx.skin, g)
    strands = (0.5 * hash_noise(pts * np.array([1.0, 0.25, 1.0]), spec.seed, 1.1)
               + smooth_texture(pts * np.array([1.0, 0.3, 1.0]), spec.seed, 0.35, (3.0, 8.0), 8))
    temp = skin - p["insulation"] * (skin - amb) + strands
    info = {"apparent_temperature_c": float(np.median(temp)), "bottom_y_mm": float(bottom0)}
    return OccluderGeometry(spec.kind, [OccluderPiece(pts, g.normals, temp, two_sided=False, stretch=g.stretch)],
                            None, info)


def _hat(spec: OccluderSpec, ctx: BuildContext) -> OccluderGeometry:
    p, model, lay = spec.params, ctx.model, ctx.model.layout
    s, amb = model.shape.scale, ctx.ambient_c
    brow_y = float(lay["landmarks"][17:27, 1].max())
    front_edge = brow_y + p["edge_mm"] * s
    grid = _head_patch(ctx, -30.0 * s, model.profiles.top + 1.0)
    az = np.abs(_section_angle(grid))
    # Hat edge: above the brows in front, over the ear tops at the sides, low at the back.
    edge = np.interp(np.rad2deg(az), [0.0, 60.0, 95.0, 140.0, 180.0],
                     [front_edge, front_edge - 5.0 * s, 22.0 * s, 0.0, -12.0 * s])
    keep = grid.points[:, 1] > edge
    g = _select(grid, keep)
    pts = g.points + g.normals * p["thickness_mm"]
    skin = _skin_under(ctx.skin, g)
    knit = (smooth_texture(pts, spec.seed, 0.25, (5.0, 12.0), 8) if p["style"] == "beanie"
            else smooth_texture(pts, spec.seed, 0.1, (20.0, 60.0)))
    temp = amb + p["fraction"] * (skin - amb) + knit
    pieces = [OccluderPiece(pts, g.normals, temp, two_sided=False, stretch=g.stretch)]
    if p["style"] == "cap":
        # Brim: a flat half-ellipse in front of the lower edge, tilted down.
        depth, half_w = p["brim_mm"] * s, 85.0 * s
        base_z = float(model.front_depth(np.array([[0.0, front_edge]]))[0]) + model.hair_style.thickness_mm * 0.3
        bx, bz = np.meshgrid(np.arange(-half_w, half_w, ctx.spacing), np.arange(-10.0, depth, ctx.spacing))
        bx, bz = bx.ravel(), bz.ravel()
        inside = (bx / half_w) ** 2 + (np.maximum(bz, 0.0) / depth) ** 2 <= 1.0
        bx, bz = bx[inside], bz[inside]
        # The brim's back edge follows the forehead curve.
        back_z = base_z - 0.012 * bx ** 2
        tilt = np.tan(np.deg2rad(p["brim_tilt_deg"]))
        by = front_edge + 1.0 - tilt * np.maximum(bz, 0.0)
        brim = np.column_stack([bx, by, back_z + bz])
        normal = np.array([0.0, 1.0, tilt])
        brim_n = np.tile(vec3.normalised(normal), (len(brim), 1))
        brim_t = amb + 0.6 * p["fraction"] * (float(np.median(skin)) - amb) + 0.1 * hash_noise(brim, spec.seed, 4.0)
        pieces.append(OccluderPiece(brim, brim_n, brim_t, two_sided=True))
    info = {"apparent_temperature_c": float(np.median(temp)), "style": p["style"]}

    def skin_effect(points: np.ndarray, neutral: np.ndarray) -> np.ndarray:
        return 0.3 * smoothstep((points[:, 1] - front_edge) / 6.0)

    return OccluderGeometry(spec.kind, pieces, skin_effect, info)


_BUILDERS = {"glasses": _glasses, "sunglasses": _glasses, "mask": _mask, "scarf": _scarf, "hand": _hand,
             "hair_fringe": _hair_fringe, "hat": _hat}


def build_occluder(spec: OccluderSpec, ctx: BuildContext) -> OccluderGeometry:
    """Geometry and apparent temperatures of one occluder on the face in `ctx`."""
    return _BUILDERS[spec.kind](spec, ctx)
