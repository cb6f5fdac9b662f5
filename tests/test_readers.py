"""One reader per artefact: `m3mstl predict` decodes an image file exactly as training does."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from m3mstl.data.coco import image_to_unit_range, read_image_file
from m3mstl.data.errors import DatasetError
from m3mstl.infer.predict import _read_image


def _files(tmp_path):
    rng = np.random.default_rng(0)
    unit = rng.random((12, 10)).astype(np.float32)
    files = {
        "8-bit": Image.fromarray((unit * 255).astype(np.uint8)),
        "16-bit": Image.fromarray((unit * 65535).astype(np.uint16)),
        "32-bit integer": Image.fromarray((unit * 200_000).astype(np.int32)),
        "float": Image.fromarray(unit),
        "colour": Image.fromarray((np.stack([unit, unit * 0.5, unit * 0.2], -1) * 255).astype(np.uint8)),
    }
    paths = {}
    for name, image in files.items():
        paths[name] = tmp_path / f"{name.replace(' ', '_')}.{'tiff' if name in ('float', '32-bit integer') else 'png'}"
        image.save(paths[name])
    return unit, paths


def test_prediction_and_training_read_every_encoding_alike(tmp_path):
    unit, paths = _files(tmp_path)
    for name, path in paths.items():
        np.testing.assert_array_equal(_read_image(path), image_to_unit_range(read_image_file(path)), err_msg=name)
        assert _read_image(path).dtype == np.float32
    # What each encoding means, from the values written (not from the reader itself).
    np.testing.assert_allclose(_read_image(paths["8-bit"]), (unit * 255).astype(np.uint8) / 255.0, atol=1e-7)
    np.testing.assert_allclose(_read_image(paths["16-bit"]), (unit * 65535).astype(np.uint16) / 65535.0, atol=1e-7)
    rgb = (np.stack([unit, unit * 0.5, unit * 0.2], -1) * 255).astype(np.uint8).astype(float)
    luminance = (0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]) / 255.0
    np.testing.assert_allclose(_read_image(paths["colour"]), luminance, atol=1.5 / 255)
    # A float image holds its values already in [0, 1]: kept, not requantised to 8 bits.
    np.testing.assert_array_equal(_read_image(paths["float"]), unit)
    # Wider than 16 bits: scaled by the image's own maximum, as in training.
    assert _read_image(paths["32-bit integer"]).max() == pytest.approx(1.0)


def test_a_page_of_a_tiff_sequence_reads_as_the_same_frame_saved_alone(tmp_path):
    """`m3mstl predict` on multi-page TIFFs decodes each page as training decodes a single file."""
    from m3mstl.infer.frames import expand_inputs, read_frame

    unit, _ = _files(tmp_path)
    pages = [Image.fromarray((unit * 65535).astype(np.uint16)), Image.fromarray(unit),
             Image.fromarray((unit * 200_000).astype(np.int32))]
    sequence = tmp_path / "sequence.tiff"
    pages[0].save(sequence, save_all=True, append_images=pages[1:])
    frames = expand_inputs([sequence])
    assert len(frames) == 3
    for i, (frame, page) in enumerate(zip(frames, pages)):
        alone = tmp_path / f"page{i}.tiff"
        page.save(alone)
        np.testing.assert_array_equal(read_frame(frame), _read_image(alone), err_msg=f"page {i}")


def test_an_unreadable_image_names_the_file(tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    with pytest.raises(DatasetError, match="broken.png"):
        _read_image(broken)
    with pytest.raises(DatasetError, match="missing"):
        _read_image(tmp_path / "absent.png")
