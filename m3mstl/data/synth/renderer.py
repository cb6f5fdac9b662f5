"""Render a `FaceSpec`: thermal image, temperature map, landmarks and their occlusion labels.

Pipeline (all numpy, vectorised):

1. Geometry: the head (`face3d.HeadModel`), two ears, the neck and the clothed shoulders
   (body frame, following part of the head pose), and every occluder (`occluders`), sampled as
   dense surface points ~1.5 output pixels apart (only the side facing the camera).
2. Camera: pose (the head turns about a pivot on the neck), perspective projection and the
   face crop (`camera.place_crop`), straight to the output grid.
3. Z-buffer: each point is splatted to the 2 x 2 pixels around it (3 x 3 or 4 x 4 where the
   relief stretches the surface between samples), depths resolved with ``np.minimum.at``;
   single-pixel pinholes take their nearest neighbour. Besides the all-object buffer, each
   occluder and the person (head, ears, neck, shoulders) keep their own depth buffers.
4. Temperatures are computed only for the winning points: skin field (`thermal.SkinField`)
   seen through its emissivity, or the occluder's apparent temperature. The background is
   the room (`camera.background_field`); then the sensor model and the 8-bit view.
5. Labels: a landmark is occluded when an occluder's depth at its pixel is in front of it or
   the occluder covers the person there (the stored mask bit), and self-occluded when the
   head hides it (exact ray march in `HeadModel.self_occluded`) or an ear, the neck or the
   shoulders lie in front of it. Occluded landmarks keep their projected position.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from m3mstl.data.synth.camera import (
    M_HEAD_TO_CAMERA,
    CropGeometry,
    background_field,
    place_crop,
    project,
    simulate_sensor,
    to_camera,
    white_hot_view,
)
from m3mstl.data.synth.face3d import (
    NECK_CENTRE_Z,
    HeadModel,
    PartGrid,
    ear_surface,
    facing_columns,
    neck_surface,
    row_norm,
    smoothstep,
)
from m3mstl.data.synth.occluders import BuildContext, OccluderGeometry, build_occluder
from m3mstl.data.synth.spec import FaceSpec
from m3mstl.data.synth.thermal import SkinField, apparent_temperature
from m3mstl.core import vec3
from m3mstl.core.landmarks import MIRROR, NUM_LANDMARKS
from m3mstl.core.pose import FLIP, rotation_from_euler
from m3mstl.data import coco

# 1.1: the same bytes on every CPU (no BLAS in the geometry, 10 mK temperature counts, numbers in
# annotations.json rounded as `recording.recorded` says).
GENERATOR_VERSION = "1.1"

# Part labels of the per-pixel part map.
BACKGROUND, SKIN, HAIR, EAR, NECK, CLOTHING, OCCLUDER = 0, 1, 2, 3, 4, 5, 6
SPLAT_SPACING_PX = 1.5        # surface sample distance in output pixels (splats and pinhole filling close the gaps)
SELF_OCCLUSION_DEPTH_MM = 4.0  # hair, an ear or the neck hides a landmark only when this much in front
OCCLUDER_DEPTH_MM = 1.0        # an occluder hides a landmark when at least this much in front
HEAD_PIVOT = np.array([0.0, -75.0, -20.0])  # head-on-neck rotation centre (head frame, mm) [A]
PINHOLE_DEPTH_MM = 15.0        # a pixel this much behind all 4 neighbours sees through a gap


@dataclass
class RenderedFace:
    """One rendered image with everything the dataset stores about it."""

    image_u8: np.ndarray              # (S, S) uint8 white-hot view
    temperature_c: np.ndarray         # (S, S) float32 measured temperature
    landmarks: np.ndarray             # (68, 2) continuous pixel coordinates
    visibility: np.ndarray            # (68,) int8, 1 occluded / 2 visible (COCO)
    occlusion_cause: list[str]        # 68 x "none" | "self" | occluder kind
    occluder_mask: np.ndarray         # (S, S) uint8, bit k = occluder k covers the person
    skin_temperature_c: np.ndarray    # (68,) true skin temperature before any occluder
    landmarks_3d: np.ndarray          # (68, 3) camera frame (OpenCV), mm
    bbox: tuple[float, float, float, float]  # face box (x, y, w, h) = landmark extent
    head_bbox: tuple[float, float, float, float] | None  # visible head (skin, hair, ears): a detector's box
    canthus_skin_max_c: np.ndarray    # (2,) hottest bare skin around inner canthi 39, 42 (before occluders)
    part_map: np.ndarray              # (S, S) uint8 part labels (BACKGROUND ... OCCLUDER)
    scene_c: np.ndarray               # (S, S) float32 temperature before the sensor model
    view_window_c: tuple[float, float]
    image_fields: dict[str, Any] = field(default_factory=dict)
    annotation_fields: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Splat:
    """Points of one renderable piece, already projected."""

    label: int
    occluder: int                 # occluder index, -1 for the person
    uv: np.ndarray                # (N, 2) output pixel coordinates
    depth: np.ndarray             # (N,) camera z (mm)
    temperature: Any              # callable(indices) -> apparent deg C
    hair: np.ndarray | None = None  # head only: hair coverage per point (for the part map)
    footprint: np.ndarray | None = None  # (N,) splat size in pixels (2, 3 or 4); None = all 2


class _ZBuffer:
    """Depth buffers of one image: all objects, the person, each occluder."""

    def __init__(self, size: int, occluders: int) -> None:
        self.size = size
        self.depth = np.full(size * size, np.inf)
        self.person = np.full(size * size, np.inf)
        self.occluder = [np.full(size * size, np.inf) for _ in range(occluders)]
        self.entries: list[tuple[_Splat, np.ndarray, np.ndarray, np.ndarray]] = []

    def add(self, splat: _Splat) -> None:
        size = self.size
        pix, depth, index = [], [], []
        ids = np.arange(len(splat.depth))
        sizes = (2,) if splat.footprint is None else tuple(int(k) for k in np.unique(splat.footprint))
        for k in sizes:
            sel = ids if splat.footprint is None else ids[splat.footprint == k]
            sel = sel[splat.depth[sel] > 1.0]            # in front of the camera
            # The k x k pixels whose centres lie within k/2 of the point (centre = c + 0.5).
            base = np.floor(splat.uv[sel] - 0.5 * k + 0.5).astype(np.int64)
            bx, by = base[:, 0], base[:, 1]
            inner = (bx >= 0) & (bx <= size - k) & (by >= 0) & (by <= size - k)
            # Points whose whole footprint is inside need no per-pixel bounds check.
            first = by[inner] * size + bx[inner]
            d_in, s_in = splat.depth[sel[inner]], sel[inner]
            edge = ~inner
            ex, ey, d_edge, s_edge = bx[edge], by[edge], splat.depth[sel[edge]], sel[edge]
            for dy in range(k):
                for dx in range(k):
                    pix.append(first + (dy * size + dx))
                    depth.append(d_in)
                    index.append(s_in)
                    if len(ex):
                        cx, cy = ex + dx, ey + dy
                        ok = (cx >= 0) & (cx < size) & (cy >= 0) & (cy < size)
                        pix.append(cy[ok] * size + cx[ok])
                        depth.append(d_edge[ok])
                        index.append(s_edge[ok])
        pix_a, depth_a, index_a = np.concatenate(pix), np.concatenate(depth), np.concatenate(index)
        np.minimum.at(self.depth, pix_a, depth_a)
        if splat.occluder >= 0:
            np.minimum.at(self.occluder[splat.occluder], pix_a, depth_a)
        else:
            np.minimum.at(self.person, pix_a, depth_a)
        self.entries.append((splat, pix_a, depth_a, index_a))

    def resolve(self, background: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        """Scene temperature, part map and, per entry, its winning point index per pixel (-1 none).

        Each pixel takes its nearest point; temperatures are computed once per winning point.
        Pinholes (a pixel no nearby sample reached, or that sees far behind all four of its
        neighbours) take the nearest neighbour's point.
        """
        n = self.size * self.size
        owner_entry = np.full(n, -1, dtype=np.int64)
        owner_index = np.full(n, -1, dtype=np.int64)
        for e, (splat, pix, depth, index) in enumerate(self.entries):
            win = depth <= self.depth[pix]
            owner_entry[pix[win]] = e
            owner_index[pix[win]] = index[win]
        self._fill_pinholes(owner_entry, owner_index)
        scene = background.ravel().copy()
        parts = np.zeros(n, dtype=np.uint8)
        winners = []
        for e, (splat, _, _, _) in enumerate(self.entries):
            where = np.nonzero(owner_entry == e)[0]
            per_pixel = np.full(n, -1, dtype=np.int64)
            per_pixel[where] = owner_index[where]
            winners.append(per_pixel)
            if len(where) == 0:
                continue
            unique, inverse = np.unique(owner_index[where], return_inverse=True)
            scene[where] = splat.temperature(unique)[inverse]
            parts[where] = splat.label
        return scene.reshape(self.size, self.size), parts.reshape(self.size, self.size), winners

    def _fill_pinholes(self, owner_entry: np.ndarray, owner_index: np.ndarray) -> None:
        size = self.size
        depth = self.depth.reshape(size, size)
        pad = np.pad(depth, 1, constant_values=np.inf)
        neighbours = np.stack([pad[:-2, 1:-1], pad[2:, 1:-1], pad[1:-1, :-2], pad[1:-1, 2:]])
        nearest = neighbours.argmin(axis=0)
        farthest = neighbours.max(axis=0)
        holes = np.isfinite(farthest) & (depth > farthest + PINHOLE_DEPTH_MM)
        if not holes.any():
            return
        rows, cols = np.nonzero(holes)
        offsets = np.array([[-1, 0], [1, 0], [0, -1], [0, 1]])[nearest[rows, cols]]
        src = (rows + offsets[:, 0]) * size + (cols + offsets[:, 1])
        dst = rows * size + cols
        owner_entry[dst] = owner_entry[src]
        owner_index[dst] = owner_index[src]
        self.depth[dst] = self.depth[src]
        for buffer in [self.person] + self.occluder:
            buffer[dst] = np.where(np.isfinite(buffer[src]) | ~np.isfinite(buffer[dst]), buffer[src], buffer[dst])


# points @ matrix.T without BLAS, so the result is the same bits on every CPU (`m3mstl.core.vec3`).
_apply = vec3.transform


def _footprint(stretch: np.ndarray | None, px_per_mm: float) -> np.ndarray | None:
    """Splat size per point: 2 px normally, 3 or 4 where the surface is stretched between samples."""
    if stretch is None:
        return None
    gap = stretch * px_per_mm
    return np.where(gap < 1.9, 2, np.where(gap < 2.9, 3, 4)).astype(np.int8)


def _spacing_mm(crop: CropGeometry, size: int) -> float:
    """Surface sample spacing that lands ~SPLAT_SPACING_PX apart on the output grid."""
    focal, _, _ = crop.output_intrinsics(size)
    nearest = crop.translation[2] - 110.0     # the nose tip is ~100 mm in front of the head origin
    return SPLAT_SPACING_PX * nearest / focal


def full_frame_geometry(crop: CropGeometry, cam) -> tuple[CropGeometry, int]:
    """The whole sensor frame as a square "crop" (side = the longer sensor side), and the rows
    (or columns) of padding above (left of) the real frame that the caller cuts away afterwards.

    The face stays where `place_crop` put it (same focal length and head position), so a full
    frame and the face crop of the same spec show the same face at the same sensor pixels.
    """
    width, height = cam.sensor_width, cam.sensor_height
    side = max(width, height)
    pad = (side - min(width, height)) // 2
    x0, y0 = (0, -pad) if width >= height else (-pad, 0)
    return CropGeometry(focal_px=crop.focal_px, principal=crop.principal, translation=crop.translation,
                        x0=x0, y0=y0, side=side), pad


class _Scene:
    """Frames, transforms and the skin field of one spec."""

    def __init__(self, spec: FaceSpec, size: int, full_frame: bool = False, full_body: bool = False) -> None:
        self.spec = spec
        self.frame_pad = 0
        self.full_body = full_body
        if full_frame:
            size = max(spec.camera.sensor_width, spec.camera.sensor_height)
        self.size = size
        ident = spec.identity
        self.model = HeadModel(ident.shape, ident.hair, spec.expression)
        self.reflect = FLIP if spec.mirrored else np.eye(3)
        self.rotation = rotation_from_euler(spec.pose.yaw, spec.pose.pitch, spec.pose.roll)
        follow = spec.pose.neck_follow
        self.body_rotation = rotation_from_euler(spec.pose.yaw * follow[0], spec.pose.pitch * follow[1],
                                                 spec.pose.roll * follow[2])
        self.skin = SkinField(self.model, ident.thermal, spec.conditions)
        self.landmarks_head = self.model.landmarks()
        self.pivot = HEAD_PIVOT * self.model.shape.scale
        self.crop = place_crop(spec.camera, self._head_world(self.landmarks_head), spec.mirrored)
        if full_frame:
            self.crop, self.frame_pad = full_frame_geometry(self.crop, spec.camera)
        self.focal, self.cx, self.cy = self.crop.output_intrinsics(size)
        self.spacing = _spacing_mm(self.crop, size)
        self.px_per_mm = SPLAT_SPACING_PX / self.spacing
        # Camera centre in the (unreflected) head frame, for culling and the ray march:
        # M world + T = 0 -> world = -M T; then undo the head's turn about the pivot.
        cam_world = -vec3.matvec(M_HEAD_TO_CAMERA, self.crop.translation)
        self.camera_head = vec3.matvec(self.reflect, vec3.matvec(self.rotation.T, cam_world - self.pivot) + self.pivot)
        self.camera_body = vec3.matvec(self.reflect,
                                       vec3.matvec(self.body_rotation.T, cam_world - self.pivot) + self.pivot)

    def _head_world(self, points_head: np.ndarray) -> np.ndarray:
        """Head points in the world (head-style axes at the camera): turned about the neck pivot."""
        geo = _apply(self.reflect, points_head)
        return _apply(self.rotation, geo - self.pivot) + self.pivot

    def head_to_camera(self, points_head: np.ndarray) -> np.ndarray:
        return to_camera(self._head_world(points_head), np.eye(3), self.crop.translation)

    def body_to_camera(self, points_body: np.ndarray) -> np.ndarray:
        """Body-frame points (neck, shoulders) turn about the same pivot by the body rotation."""
        geo = _apply(self.reflect, points_body)
        world = _apply(self.body_rotation, geo - self.pivot) + self.pivot
        return to_camera(world, np.eye(3), self.crop.translation)

    def project(self, points_cam: np.ndarray) -> np.ndarray:
        return project(points_cam, self.focal, self.cx, self.cy)

    def lowest_visible_y(self) -> float:
        """A height (body frame, mm) below which nothing reaches the picture, with a margin."""
        t = self.crop.translation
        depth = t[2] + 120.0 * self.model.shape.scale           # behind the neck: the widest view
        y_cam = (self.size - self.cy) * depth / self.focal
        world_y = t[1] - y_cam                                   # camera y points down
        tilt = abs(self.spec.pose.pitch * self.spec.pose.neck_follow[1]) + abs(self.spec.pose.roll)
        return float(world_y - 40.0 - 4.0 * tilt)


def _facing(points_cam: np.ndarray, normals_cam: np.ndarray, slack: float = 0.05) -> np.ndarray:
    """Points whose normal faces the camera (at the origin of the camera frame)."""
    dots = -vec3.dot(normals_cam, points_cam)
    return dots > -slack * row_norm(points_cam)


def _normals_to_camera(scene: _Scene, normals: np.ndarray, body: bool = False) -> np.ndarray:
    rot = scene.body_rotation if body else scene.rotation
    return _apply(vec3.matmul(vec3.matmul(M_HEAD_TO_CAMERA, rot), scene.reflect), normals)


def _cos_view(points_cam: np.ndarray, normals_cam: np.ndarray) -> np.ndarray:
    return -vec3.dot(normals_cam, points_cam) / row_norm(points_cam)


def _head_splat(scene: _Scene) -> _Splat:
    model, skin = scene.model, scene.skin
    grid = model.grid(model.param_rows(scene.spacing), model.param_cols(scene.spacing, scene.camera_head),
                      camera=scene.camera_head)
    cam = scene.head_to_camera(grid.points)
    ncam = _normals_to_camera(scene, grid.normals)
    keep = np.nonzero(_facing(cam, ncam))[0]
    cam, ncam = cam[keep], ncam[keep]
    pts, neutral, front = grid.points[keep], grid.neutral[keep], grid.front[keep]
    hair, beard, cavity = grid.hair[keep], grid.beard[keep], grid.cavity[keep]
    footprint = _footprint(grid.stretch[keep], scene.px_per_mm)
    amb, eps = scene.spec.conditions.ambient_c, scene.spec.identity.thermal.emissivity

    def temperature(idx: np.ndarray) -> np.ndarray:
        true = skin.face(pts[idx], neutral[idx], front[idx], hair[idx], beard[idx], cavity[idx])
        return apparent_temperature(true, _cos_view(cam[idx], ncam[idx]), eps, amb)

    return _Splat(label=SKIN, occluder=-1, uv=scene.project(cam), depth=cam[:, 2],
                  temperature=temperature, hair=hair, footprint=footprint)


def _part_splat(scene: _Scene, part: PartGrid, label: int, body: bool, temp_fn) -> _Splat:
    cam = scene.body_to_camera(part.points) if body else scene.head_to_camera(part.points)
    ncam = _normals_to_camera(scene, part.normals, body=body)
    keep = np.nonzero(_facing(cam, ncam))[0]
    cam, ncam = cam[keep], ncam[keep]
    pts, param = part.points[keep], part.param[keep]
    amb, eps = scene.spec.conditions.ambient_c, scene.spec.identity.thermal.emissivity

    def temperature(idx: np.ndarray) -> np.ndarray:
        return apparent_temperature(temp_fn(pts[idx], param[idx]), _cos_view(cam[idx], ncam[idx]), eps, amb)

    return _Splat(label=label, occluder=-1, uv=scene.project(cam), depth=cam[:, 2], temperature=temperature)


def _neck_and_shoulders(scene: _Scene) -> list[_Splat]:
    """Neck (skin down to the neckline, clothing below) and a torso with shoulders."""
    s = scene.model.shape.scale
    spacing = scene.spacing
    lowest = scene.lowest_visible_y()
    neck = neck_surface(s, spacing, lowest_y=lowest, camera=scene.camera_body)
    clothing = scene.spec.identity.clothing
    amb = scene.spec.conditions.ambient_c
    neck_t = scene.skin.t["neck"]
    cloth_t = amb + clothing.temperature_fraction * (neck_t - amb)
    neckline = -clothing.neckline_mm * s

    def neck_temperature(points: np.ndarray, param: np.ndarray) -> np.ndarray:
        skin = scene.skin.neck(points)
        # A V/crew neckline: lower in front than at the back.
        line = neckline - 25.0 * s * smoothstep(points[:, 2] / 60.0)
        covered = smoothstep((line - points[:, 1]) / 4.0)
        return skin + covered * (cloth_t - skin)

    splats = [_part_splat(scene, neck, NECK, True, neck_temperature)]
    torso = _torso_surface(s, spacing, lowest, scene.camera_body, full_length=scene.full_body)
    if torso is None:
        return splats

    def torso_temperature(points: np.ndarray, param: np.ndarray) -> np.ndarray:
        from m3mstl.data.synth.thermal import hash_noise
        return cloth_t + 0.15 * hash_noise(points, scene.spec.identity.thermal.texture_seed + 5, 6.0)

    splats.append(_part_splat(scene, torso, CLOTHING, True, torso_temperature))
    return splats


def _torso_surface(scale: float, spacing: float, lowest_y: float, camera: np.ndarray,
                   full_length: bool = False) -> PartGrid | None:
    """Shoulders and chest as a rounded box in the body frame, below the neck [A: 2 x 185 mm wide].

    Only the rows above `lowest_y` (the picture's lower edge) are generated; None if none is.
    The box ends at the chest (420 mm below the eyes), enough for a portrait; with `full_length`
    (a person standing in a scene, `m3mstl.data.synth.scenes`) the clothed body goes on down to
    the picture's lower edge, as a standing body does in a camera frame.
    """
    half_w, half_d = 185.0 * scale, 105.0 * scale
    top, chest = -225.0 * scale, max(-420.0 * scale, lowest_y)
    bottom = lowest_y if full_length else chest
    if bottom >= top - 2.0 * spacing:
        bottom = top - 2.0 * spacing
    # The shoulders close towards the neck over the first fifth of the portrait's torso, in mm, so a
    # full-length body has the same shoulders (not a slope stretched over its whole height).
    closing_scale = max(top - bottom, 1e-9) / max(top - min(chest, top - 2.0 * spacing), 1e-9)
    n_around = max(int(np.ceil(2 * np.pi * half_w / spacing)), 16)
    rise = 30.0 * scale
    n_down = max(int(np.ceil((top - bottom + 2.0 * rise) / spacing)), 4)
    if full_length:   # twice the rows: a far, long body at this spacing left gaps where the shoulders slope
        n_down *= 2
    t = facing_columns((np.arange(n_around) + 0.5) / n_around * 2.0 * np.pi - np.pi, camera)[None, :]
    v = np.linspace(0.0, 1.0, n_down)[:, None]
    # Cross-section: a superellipse; the shoulders slope down from the neck and the first rows
    # close the top towards the neck.
    ex = 2.0 / 3.5
    sin_t, cos_t = np.sin(t), np.cos(t)
    x = half_w * np.sign(sin_t) * np.abs(sin_t) ** ex
    z = half_d * np.sign(cos_t) * np.abs(cos_t) ** ex
    closing = 1.0 - smoothstep(v * closing_scale / 0.2)
    shrink = 0.45 + 0.55 * (1.0 - closing)
    y = top - 0.0028 * (x * shrink) ** 2 / scale + (bottom - top) * v + rise * closing
    x, z = x * shrink, NECK_CENTRE_Z * scale + z * shrink
    pts = np.stack(np.broadcast_arrays(x, y, z), axis=-1)
    # Normals: the section's outward normal, tipped upwards where the top closes.
    nx = np.sign(sin_t) * np.abs(sin_t) ** (2.0 - ex) / half_w
    nz = np.sign(cos_t) * np.abs(cos_t) ** (2.0 - ex) / half_d
    length = np.sqrt(nx ** 2 + nz ** 2)
    horiz = np.stack(np.broadcast_arrays(nx / length, 0.0 * v, nz / length), axis=-1)
    up = np.array([0.0, 1.0, 0.0])
    normals = horiz * (1.0 - closing[..., None]) + up * closing[..., None]
    normals = normals / np.sqrt(np.sum(normals ** 2, axis=-1, keepdims=True))
    uv = np.stack(np.broadcast_arrays((t + np.pi) / (2 * np.pi), v), axis=-1).reshape(-1, 2)
    return PartGrid(points=pts.reshape(-1, 3), normals=normals.reshape(-1, 3), param=uv, shape=pts.shape[:2])


def _occluder_splats(scene: _Scene, index: int, geometry: OccluderGeometry) -> list[_Splat]:
    splats = []
    for piece in geometry.pieces:
        body = piece.frame == "body"
        cam = scene.body_to_camera(piece.points) if body else scene.head_to_camera(piece.points)
        keep = np.arange(len(cam))
        if not piece.two_sided:
            ncam = _normals_to_camera(scene, piece.normals, body=body)
            keep = np.nonzero(_facing(cam, ncam))[0]
        cam, temps = cam[keep], piece.temperature[keep]
        footprint = _footprint(None if piece.stretch is None else piece.stretch[keep], scene.px_per_mm)
        splats.append(_Splat(label=OCCLUDER, occluder=index, uv=scene.project(cam), depth=cam[:, 2],
                             temperature=lambda idx, t=temps: t[idx], footprint=footprint))
    return splats


def _landmark_labels(scene: _Scene, zbuf: _ZBuffer, mask: np.ndarray, lm_cam: np.ndarray, lm_uv: np.ndarray,
                     kinds: list[str], part_map: np.ndarray) -> list[str]:
    """Occlusion cause per landmark (in the order of the head model's landmarks).

    The front-most occluder that covers the person at the landmark's pixel (its mask bit) wins;
    else "self" when the head (exact ray march) or its hair, an ear, the neck or the shoulders
    hide it;
    else an occluder lying between the landmark and the camera; else "none".
    """
    size = scene.size
    col = np.clip(np.floor(lm_uv[:, 0]).astype(int), 0, size - 1)
    row = np.clip(np.floor(lm_uv[:, 1]).astype(int), 0, size - 1)
    pix = row * size + col
    depth = lm_cam[:, 2]
    bits = mask.ravel()[pix].astype(np.int64)
    count = len(kinds)
    occ_depth = np.array([zbuf.occluder[k][pix] for k in range(count)]).reshape(count, NUM_LANDMARKS)
    covering = np.array([(bits >> k) & 1 for k in range(count)], dtype=bool).reshape(count, NUM_LANDMARKS)
    in_front = occ_depth < depth[None, :] - OCCLUDER_DEPTH_MM
    self_hidden = scene.model.self_occluded(scene.landmarks_head, scene.camera_head)
    body_hidden = (zbuf.person[pix] < depth - SELF_OCCLUSION_DEPTH_MM) & np.isin(part_map.ravel()[pix],
                                                                               (HAIR, EAR, NECK, CLOTHING))
    causes = []
    for i in range(NUM_LANDMARKS):
        if covering[:, i].any():
            candidates = np.where(covering[:, i], occ_depth[:, i], np.inf)
            causes.append(kinds[int(np.argmin(candidates))])
        elif self_hidden[i] or body_hidden[i]:
            causes.append("self")
        elif in_front[:, i].any():
            candidates = np.where(in_front[:, i], occ_depth[:, i], np.inf)
            causes.append(kinds[int(np.argmin(candidates))])
        else:
            causes.append("none")
    return causes


def render(spec: FaceSpec, size: int, full_frame: bool = False, full_body: bool = False) -> RenderedFace:
    """Render one spec at size x size pixels (deterministic: same spec, same arrays).

    With `full_frame` the whole sensor frame is rendered at sensor resolution instead (its
    width x height from the spec's camera, 160x120 .. 640x512; `size` is then ignored): the
    input a face detector and the whole pipeline see. `full_body`: the clothed body reaches the
    frame's lower edge (a person in a scene) instead of ending at the chest.
    """
    if size < 16:
        raise ValueError(f"size must be at least 16 pixels, got {size}")
    scene = _Scene(spec, size, full_frame, full_body)
    size = scene.size
    model, skin = scene.model, scene.skin
    amb = spec.conditions.ambient_c

    # Occluders first: their skin effects (a mask warms the skin beneath) join the skin field.
    ctx = BuildContext(model=model, skin=skin, spacing=scene.spacing, ambient_c=amb,
                       mask_worn=any(o.kind == "mask" for o in spec.occluders), camera=scene.camera_head)
    geometries = [build_occluder(o, ctx) for o in spec.occluders]
    skin.local_effects = [g.skin_effect for g in geometries if g.skin_effect is not None]

    zbuf = _ZBuffer(size, len(geometries))
    head = _head_splat(scene)
    zbuf.add(head)
    for sign in (-1.0, 1.0):
        ear = ear_surface(model, sign, scene.spacing)
        zbuf.add(_part_splat(scene, ear, EAR, False, lambda p, q: skin.ear(q, p)))
    for splat in _neck_and_shoulders(scene):
        zbuf.add(splat)
    for k, geometry in enumerate(geometries):
        for splat in _occluder_splats(scene, k, geometry):
            zbuf.add(splat)

    background = background_field(spec.background, amb, scene.crop, spec.camera, size, spec.mirrored)
    scene_c, part_map, winners = zbuf.resolve(background)
    head_won = winners[0]                      # the head is the first entry
    hairy = (head_won >= 0) & (head.hair[np.maximum(head_won, 0)] > 0.5)
    part_map = np.where(hairy.reshape(size, size), np.uint8(HAIR), part_map)

    mask = np.zeros(size * size, dtype=np.uint8)
    for k in range(len(geometries)):
        covers = zbuf.occluder[k] < zbuf.person
        mask[covers] |= np.uint8(1 << k)
    mask = mask.reshape(size, size)

    lm_cam = scene.head_to_camera(scene.landmarks_head)
    lm_uv = scene.project(lm_cam)
    kinds = [o.kind for o in spec.occluders]
    causes = _landmark_labels(scene, zbuf, mask, lm_cam, lm_uv, kinds, part_map)
    skin_at = _landmark_skin(scene)
    if spec.mirrored:
        # The reflected landmark i sits where the mirror face has landmark MIRROR[i].
        lm_cam, lm_uv, skin_at = lm_cam[MIRROR], lm_uv[MIRROR], skin_at[MIRROR]
        causes = [causes[j] for j in MIRROR]
    visibility = np.where(np.array(causes) == "none", 2, 1).astype(np.int8)

    canthus_max = _canthus_skin_max(scene)
    if spec.mirrored:
        canthus_max = canthus_max[::-1].copy()   # landmark 39 of the mirror image is the face's 42
    measured = simulate_sensor(scene_c, spec.camera, scene.crop, spec.mirrored)
    if full_frame:
        # Cut the square render down to the sensor frame (the padding lies outside the sensor).
        measured, scene_c, part_map, mask = (_cut_frame(a, scene.frame_pad, spec.camera)
                                             for a in (measured, scene_c, part_map, mask))
        lm_uv = lm_uv - _frame_offset(scene.frame_pad, spec.camera)
    # What the camera records: radiometric counts of 10 mK (the FLIR / Lepton TLinear form,
    # docs/thermal_physics.md section 3.2), so the .npy and the centi-Kelvin .png maps hold the same
    # values, and the last-bit differences that CPUs' vectorised exp/sin/cos leave in the float64
    # render (up to ~1e-13 K) cannot reach the written bytes, as a float32 cast let them.
    measured = coco.decode_centikelvin(coco.encode_centikelvin(measured)).astype(np.float64)
    # The low end of the window comes from everything the person wears or is (head, hair,
    # neck, clothes, occluders), the high end from the skin.
    person = part_map != BACKGROUND
    skin_pixels = np.isin(part_map, (SKIN, EAR, NECK))
    image_u8, lo, hi = white_hot_view(measured, person, skin_pixels)
    lo_xy, hi_xy = lm_uv.min(axis=0), lm_uv.max(axis=0)
    bbox = (float(lo_xy[0]), float(lo_xy[1]), float(hi_xy[0] - lo_xy[0]), float(hi_xy[1] - lo_xy[1]))
    head_bbox = head_box(part_map)
    rendered = RenderedFace(
        image_u8=image_u8, temperature_c=measured.astype(np.float32), landmarks=lm_uv,
        visibility=visibility, occlusion_cause=causes, occluder_mask=mask, skin_temperature_c=skin_at,
        landmarks_3d=lm_cam, bbox=bbox, head_bbox=head_bbox, canthus_skin_max_c=canthus_max, part_map=part_map,
        scene_c=scene_c.astype(np.float32), view_window_c=(lo, hi))
    rendered.image_fields = _image_fields(spec, scene, geometries, (lo, hi))
    if full_frame:
        offset = _frame_offset(scene.frame_pad, spec.camera)
        camera = rendered.image_fields["camera"]
        camera["intrinsics_px"] = [scene.focal, scene.cx - offset[0], scene.cy - offset[1]]
        camera["crop_sensor_px"] = [0, 0, spec.camera.sensor_width, spec.camera.sensor_height]
        rendered.image_fields["full_frame"] = True
    rendered.annotation_fields = {
        "occlusion_cause": causes,
        "landmarks_3d": lm_cam,
        "skin_temperature_c": skin_at,
        "canthus_skin_max_c": canthus_max,
    }
    if head_bbox is not None:
        rendered.annotation_fields["head_bbox"] = list(head_bbox)
    return rendered


def _frame_offset(pad: int, cam) -> np.ndarray:
    """Where the sensor frame starts inside the square full-frame render (x, y)."""
    return np.array([0.0, float(pad)]) if cam.sensor_width >= cam.sensor_height else np.array([float(pad), 0.0])


def _cut_frame(array: np.ndarray, pad: int, cam) -> np.ndarray:
    height, width = cam.sensor_height, cam.sensor_width
    if width >= height:
        return array[pad:pad + height, :width]
    return array[:height, pad:pad + width]


def head_box(part_map: np.ndarray) -> tuple[float, float, float, float] | None:
    """(x, y, w, h) of the visible head: skin of the head, its hair and ears (not neck, clothing
    or occluders), in continuous pixel coordinates; None when no head pixel is visible.

    This is the kind of box a face detector returns, unlike the landmark extent (which knows
    where hidden landmarks are and leaves out the forehead).
    """
    rows, cols = np.nonzero(np.isin(part_map, (SKIN, HAIR, EAR)))
    if rows.size == 0:
        return None
    return (float(cols.min()), float(rows.min()), float(cols.max() + 1 - cols.min()),
            float(rows.max() + 1 - rows.min()))


CANTHUS_REGION_MM = 6.0   # half-side of the chart square searched for the hottest canthus skin
CANTHUS_REGION_STEP_MM = 0.5


def _canthus_skin_max(scene: _Scene) -> np.ndarray:
    """Hottest bare skin (deg C) within +-CANTHUS_REGION_MM of inner canthi 39 and 42 (face chart).

    The reference a canthus reading should reproduce: the skin field itself (no hair, occluder,
    emissivity, blur or sensor), searched around the landmark because the hot spot sits a little
    nasal of the canthus point. Head-model order (before any mirroring).
    """
    model = scene.model
    chart = model.landmark_chart()
    steps = np.arange(-CANTHUS_REGION_MM, CANTHUS_REGION_MM + 1e-9, CANTHUS_REGION_STEP_MM) * model.shape.scale
    dx, dy = np.meshgrid(steps, steps)
    offsets = np.column_stack([dx.ravel(), dy.ravel()])
    out = []
    for index in (39, 42):
        grid = chart[index] + offsets
        points = np.column_stack([grid, model.front_depth(grid)])
        neutral, cavity = model.unwarp(grid)
        _, front = model.base_front(grid[:, 0], grid[:, 1])
        zeros = np.zeros(len(grid))
        out.append(float(scene.skin.face(points, neutral, front, zeros, zeros, cavity, include_hair=False).max()))
    return np.array(out)


def _landmark_skin(scene: _Scene) -> np.ndarray:
    """True skin temperature at the 68 landmarks: no hair, no occluder, no emissivity, no noise."""
    model = scene.model
    chart = model.landmark_chart()
    neutral, cavity = model.unwarp(chart)
    _, front = model.base_front(chart[:, 0], chart[:, 1])
    points = scene.landmarks_head
    zeros = np.zeros(len(points))
    return scene.skin.face(points, neutral, front, zeros, zeros, cavity, include_hair=False)


def _image_fields(spec: FaceSpec, scene: _Scene, geometries: list[OccluderGeometry],
                  window: tuple[float, float]) -> dict[str, Any]:
    """Per-image JSON fields: pose, room, occluders, camera, subject, expression."""
    rotation = rotation_from_euler(spec.pose.yaw, spec.pose.pitch, spec.pose.roll)
    cam, ident = spec.camera, spec.identity
    occluders = []
    for o, g in zip(spec.occluders, geometries):
        entry = {"type": o.kind, "apparent_temperature_c": float(g.info["apparent_temperature_c"])}
        entry.update({k: v for k, v in g.info.items() if k != "apparent_temperature_c"})
        occluders.append(entry)
    return {
        "head_pose": {"yaw": spec.pose.yaw, "pitch": spec.pose.pitch, "roll": spec.pose.roll,
                      "rotation": rotation.tolist()},
        "ambient_c": spec.conditions.ambient_c,
        "occluders": occluders,
        "polarity": "white_hot",
        "view_window_c": list(window),
        "expression": {"name": spec.expression.name, "code": spec.expression_code,
                       "mouth_open_mm": spec.expression.mouth_open_mm, "smile": spec.expression.smile,
                       "brow_raise": spec.expression.brow_raise},
        "fever": {"core_delta_c": spec.conditions.core_delta_c, "febrile": spec.conditions.core_delta_c > 0},
        "breathing": {"phase": spec.conditions.breathing_phase,
                      "amplitude_c": spec.conditions.breathing_amplitude_c},
        "camera": {"sensor": f"{cam.sensor_width}x{cam.sensor_height}", "sensor_width": cam.sensor_width,
                   "sensor_height": cam.sensor_height, "distance_m": cam.distance_m, "netd_mk": cam.netd_mk,
                   "focal_px": scene.crop.focal_px,
                   "hfov_deg": float(np.degrees(2 * np.arctan(0.5 * cam.sensor_width / scene.crop.focal_px))),
                   "crop_sensor_px": [scene.crop.x0, scene.crop.y0, scene.crop.side],
                   "intrinsics_px": [scene.focal, scene.cx, scene.cy],
                   "blur_sigma_px": cam.blur_sigma_px, "offset_error_c": cam.offset_error_c,
                   "frame": "OpenCV camera frame: x right, y down, z forward, mm"},
        "subject": {"id": spec.subject, "sex": ident.sex, "population": ident.population,
                    "hair_density": ident.hair.density, "beard_density": ident.hair.beard_density,
                    "wears_glasses": ident.wears_glasses,
                    "inner_canthus_c_at_24": ident.thermal.inner_canthus_c,
                    "nose_deficit_c": ident.thermal.nose_deficit},
        "mirrored": spec.mirrored,
    }
