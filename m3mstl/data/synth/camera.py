"""Camera of SynthTFD68: projection, face crop, sensor effects, background and the 8-bit view.
("spec N.N": section N.N of docs/thermal_physics.md.)

Frames. The head frame is `m3mstl.core.pose`'s (x right, y up, z towards the camera). The camera
frame is OpenCV's: x right, y DOWN, z forward along the optical axis, millimetres. A head point
p goes to the camera as

    p_cam = M (R p) + T,   M = diag(1, -1, -1),   R = rotation_from_euler(yaw, pitch, roll),

with T = (tx, ty, distance): at zero pose the camera looks along the head's -z axis. Pixels:
u = f x / z + W / 2, v = f y / z + H / 2 in continuous pixel coordinates (pixel (r, c) covers
[c, c + 1) x [r, r + 1)), the convention of `m3mstl.data.records`.

The sensor frame (160x120 .. 640x512, spec 3.1) is never rendered whole: the face crop (a
square around the landmark box, integer sensor pixels) is rendered straight at the output size
and the sensor is simulated on that crop, at sensor resolution when the crop holds fewer sensor
pixels than the output (then upsampled), or on the output grid with the noise of binned sensor
pixels otherwise. Effects (spec 3.3 recommendation): optical blur (Gaussian PSF), temporal
noise sigma = NETD, column and row offsets, a smooth fixed-pattern field, radial vignetting with
a narcissus disc, a global offset error, a few bad pixels.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

from m3mstl.core import vec3

M_HEAD_TO_CAMERA = np.diag([1.0, -1.0, -1.0])
NOMINAL_FACE_WIDTH_MM = 140.0   # face width used to turn "face fraction of the frame" into a focal length


@dataclass(frozen=True)
class CameraSpec:
    """Sensor, geometry, crop and noise of one image's camera."""

    sensor_width: int = 464
    sensor_height: int = 348
    distance_m: float = 1.0               # camera to the head's origin (spec task: 0.6-1.5 m)
    face_fraction: float = 0.4            # face width / frame width (spec: a third to a half)
    frame_offset: tuple[float, float] = (0.0, 0.0)  # where the crop sits in the frame, -1..1 of the slack
    crop_margin: float = 1.6              # crop side / landmark-box side
    crop_shift: tuple[float, float] = (0.0, -0.08)  # crop centre offset from the box centre (x side)
    netd_mk: float = 50.0                 # temporal noise sigma (spec task: 30-80 mK)
    column_noise_mk: float = 25.0         # column offsets (3.3: 10-50 mK)
    row_noise_mk: float = 10.0            # row offsets
    fpn_c: float = 0.1                    # smooth fixed-pattern field (3.3: 0.05-0.2 K)
    vignetting_c: float = 0.2             # signed radial offset at the frame corner (3.3: 0.1-0.5 K)
    narcissus_c: float = 0.1              # cold central disc (3.3)
    offset_error_c: float = 0.0           # global radiometric offset (3.3: U(-1, 1) K)
    blur_sigma_px: float = 0.8            # Gaussian PSF sigma in sensor pixels (3.3: 0.5-1.5)
    bad_pixels: int = 0                   # stuck pixels in the crop
    seed: int = 0                         # noise realisations


@dataclass(frozen=True)
class BackgroundSpec:
    """The room behind the subject: walls at ambient, a gradient, occasional warm objects."""

    wall_offset_c: float = 0.0                      # wall - air temperature
    gradient_c: tuple[float, float] = (0.0, 0.0)    # change across the frame in x and y (K)
    # Warm objects (radiator, monitor, lamp, a person): (cx, cy, half_w, half_h) as frame
    # fractions, temperature above the wall (K), roundness 0 (box) .. 1 (ellipse).
    objects: tuple[tuple[float, float, float, float, float, float], ...] = ()


@dataclass
class CropGeometry:
    """Camera intrinsics and the face crop in sensor pixels."""

    focal_px: float
    principal: tuple[float, float]
    translation: np.ndarray          # T (mm, camera frame)
    x0: int
    y0: int
    side: int                        # crop side in sensor pixels

    def output_intrinsics(self, size: int) -> tuple[float, float, float]:
        """Focal length and principal point of the crop resampled to size x size."""
        k = size / self.side
        return self.focal_px * k, (self.principal[0] - self.x0) * k, (self.principal[1] - self.y0) * k


def to_camera(points_head: np.ndarray, rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """Head-frame points (N, 3) to camera coordinates (elementwise, so results are bitwise stable)."""
    r = vec3.matmul(M_HEAD_TO_CAMERA, rotation)
    x, y, z = points_head[:, 0], points_head[:, 1], points_head[:, 2]
    out = np.empty_like(points_head, dtype=np.float64)
    for i in range(3):
        out[:, i] = r[i, 0] * x + r[i, 1] * y + r[i, 2] * z + translation[i]
    return out


def project(points_cam: np.ndarray, focal: float, cx: float, cy: float) -> np.ndarray:
    """Perspective projection to continuous pixel coordinates (N, 2)."""
    z = points_cam[:, 2]
    return np.column_stack([focal * points_cam[:, 0] / z + cx, focal * points_cam[:, 1] / z + cy])


def place_crop(cam: CameraSpec, landmarks_world: np.ndarray, mirrored: bool) -> CropGeometry:
    """Focal length, head position and integer face crop for a camera and posed landmarks.

    `landmarks_world` are the posed landmarks in head-style axes centred on the head (x right,
    y up, z towards the camera). The focal length makes a face of NOMINAL_FACE_WIDTH_MM span
    `face_fraction` of the frame width; it is reduced if the crop would not fit the frame. The
    head is then moved so the crop sits at `frame_offset` within the slack left around it.
    """
    rotation = np.eye(3)
    width, height = cam.sensor_width, cam.sensor_height
    distance = cam.distance_m * 1000.0
    principal = (0.5 * width, 0.5 * height)
    focal = cam.face_fraction * width * distance / NOMINAL_FACE_WIDTH_MM
    sign = -1.0 if mirrored else 1.0
    translation = np.array([0.0, 0.0, distance])

    def crop_for(focal: float, translation: np.ndarray) -> tuple[float, float, float]:
        uv = project(to_camera(landmarks_world, rotation, translation), focal, *principal)
        lo, hi = uv.min(axis=0), uv.max(axis=0)
        side = cam.crop_margin * float(max(hi[0] - lo[0], hi[1] - lo[1]))
        centre = 0.5 * (lo + hi) + np.array([sign * cam.crop_shift[0], cam.crop_shift[1]]) * side
        return float(centre[0]), float(centre[1]), side

    cx, cy, side = crop_for(focal, translation)
    limit = 0.96 * min(width, height)
    if side > limit:
        focal *= limit / side
        cx, cy, side = crop_for(focal, translation)
    # Shift the head laterally so the crop centre lands at the requested place in the frame.
    slack = np.array([width - side, height - side]) * 0.5
    want = np.array(principal) + np.array([sign * cam.frame_offset[0], cam.frame_offset[1]]) * slack * 0.9
    shift_px = want - np.array([cx, cy])
    translation = translation + np.array([shift_px[0], shift_px[1], 0.0]) * distance / focal
    cx, cy, side = crop_for(focal, translation)
    side_px = int(np.clip(round(side), 8, min(width, height)))
    x0 = int(np.clip(round(cx - 0.5 * side_px), 0, width - side_px))
    y0 = int(np.clip(round(cy - 0.5 * side_px), 0, height - side_px))
    return CropGeometry(focal_px=focal, principal=principal, translation=translation, x0=x0, y0=y0, side=side_px)


# ---------------------------------------------------------------------------------------------
# Background
# ---------------------------------------------------------------------------------------------


def background_field(bg: BackgroundSpec, ambient_c: float, crop: CropGeometry, cam: CameraSpec, size: int,
                     mirrored: bool) -> np.ndarray:
    """Temperature (size, size) of the room behind the subject, on the output grid."""
    u, v = _sensor_coords(crop, size)
    fx = u / cam.sensor_width
    if mirrored:
        fx = 1.0 - fx
    fy = v / cam.sensor_height
    out = ambient_c + bg.wall_offset_c + bg.gradient_c[0] * (fx - 0.5) + bg.gradient_c[1] * (fy - 0.5)
    out = np.broadcast_to(out, (size, size)).copy()
    for cx, cy, hw, hh, warm, round_ in bg.objects:
        dx, dy = np.abs(fx - cx) / hw, np.abs(fy - cy) / hh
        p = 2.0 + 10.0 * (1.0 - round_)          # superellipse: round (2) to boxy (12)
        r = (dx ** p + dy ** p) ** (1.0 / p)
        out += warm * (1.0 - np.clip((r - 0.85) / 0.15, 0.0, 1.0))
    return out


def _sensor_coords(crop: CropGeometry, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Sensor coordinates of the output pixel centres: u (1, size) and v (size, 1)."""
    centres = (np.arange(size) + 0.5) * crop.side / size
    return (crop.x0 + centres)[None, :], (crop.y0 + centres)[:, None]


# ---------------------------------------------------------------------------------------------
# Sensor simulation
# ---------------------------------------------------------------------------------------------


def _resize(image: np.ndarray, size: int, resample: int) -> np.ndarray:
    return np.asarray(Image.fromarray(image.astype(np.float32), mode="F").resize((size, size), resample=resample),
                      dtype=np.float64)


def simulate_sensor(scene_c: np.ndarray, cam: CameraSpec, crop: CropGeometry, mirrored: bool) -> np.ndarray:
    """Measured temperature (size, size) of a clean scene rendered on the output grid.

    Works at R = min(crop side, output size) pixels: the sensor's own pixels when the crop is
    smaller than the output, binned sensor pixels otherwise (noise then averages down as
    1/k for a k x k bin and column noise as 1/sqrt(k)).
    """
    size = scene_c.shape[0]
    work = min(crop.side, size)
    k = crop.side / work                           # sensor pixels per working pixel (>= 1)
    rng = np.random.default_rng(cam.seed)
    img = scene_c if work == size else _resize(scene_c, work, Image.Resampling.BOX)
    sigma = cam.blur_sigma_px / k
    if sigma > 0.25:
        img = gaussian_filter(img, sigma, mode="nearest")
    # Noise fields are drawn on the working grid in sensor orientation and mirrored with the
    # scene, so a mirrored spec renders the mirror image.
    temporal = rng.normal(0.0, cam.netd_mk / 1000.0 / k, size=(work, work))
    columns = rng.normal(0.0, cam.column_noise_mk / 1000.0 / np.sqrt(k), size=(1, work))
    rows = rng.normal(0.0, cam.row_noise_mk / 1000.0 / np.sqrt(k), size=(work, 1))
    noise = temporal + columns + rows
    if cam.bad_pixels:
        idx = rng.integers(0, work * work, size=cam.bad_pixels)
        values = rng.choice([-1.0, 1.0], size=cam.bad_pixels) * rng.uniform(1.0, 4.0, size=cam.bad_pixels)
        noise.ravel()[idx] += values
    if mirrored:
        noise = noise[:, ::-1]
    # Smooth fixed pattern: random knots over the whole frame, cubic-ish upsampling.
    knots = rng.normal(0.0, cam.fpn_c, size=(5, 6))
    centres = (np.arange(work) + 0.5) * crop.side / work
    u = (crop.x0 + centres) / cam.sensor_width
    v = (crop.y0 + centres) / cam.sensor_height
    if mirrored:
        # The mirror image's column j sees the unmirrored frame at 1 - u: evaluate there (in
        # increasing order, as the spline wants) and flip back.
        fpn = _bicubic_knots(knots, v, (1.0 - u)[::-1])[:, ::-1]
        u = 1.0 - u
    else:
        fpn = _bicubic_knots(knots, v, u)
    # Radial vignetting (signed) and a narcissus disc (colder centre), in frame coordinates.
    ru = (u[None, :] - 0.5) * 2.0
    rv = (v[:, None] - 0.5) * 2.0 * cam.sensor_height / cam.sensor_width
    r2 = (ru ** 2 + rv ** 2) / (1.0 + (cam.sensor_height / cam.sensor_width) ** 2)
    shading = cam.vignetting_c * r2 - cam.narcissus_c * np.exp(-r2 / 0.15)
    img = img + noise + fpn + shading + cam.offset_error_c
    if work != size:
        img = _resize(img, size, Image.Resampling.BILINEAR)
    return img


def _bicubic_knots(knots: np.ndarray, v: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Smoothly interpolate a coarse knot grid spanning [0, 1]^2 at (v rows, u cols)."""
    from scipy.interpolate import RectBivariateSpline

    ky, kx = knots.shape
    spline = RectBivariateSpline(np.linspace(0, 1, ky), np.linspace(0, 1, kx), knots, kx=3, ky=3)
    return spline(np.clip(v, 0, 1), np.clip(u, 0, 1))


def white_hot_view(measured_c: np.ndarray, person: np.ndarray, skin: np.ndarray) -> tuple[np.ndarray, float, float]:
    """8-bit white-hot view by robust min-max (spec 3.4 (a)): 255 = hot.

    The window runs from the 1st percentile of the person (head, hair, neck, clothing, what
    they wear) to the
    99.9th percentile of the skin, both taken on a lightly smoothed copy (sigma 1 px) so a bad
    pixel cannot set them and the canthi stay the brightest spots. The face gets the grey
    levels, the room and anything colder than the person (eyeglass lenses) go dark, and warm
    objects behind saturate.
    """
    robust = gaussian_filter(measured_c, 1.0, mode="nearest")
    low_set = robust[person] if person.any() else robust
    high_set = robust[skin] if skin.any() else low_set
    lo = float(np.percentile(low_set, 1.0))
    hi = float(np.percentile(high_set, 99.9))
    if hi - lo < 0.5:
        hi = lo + 0.5
    scaled = np.clip((measured_c - lo) / (hi - lo), 0.0, 1.0)
    return np.rint(scaled * 255.0).astype(np.uint8), lo, hi
