"""Tests for bulk_panel.compute.images: decoding every awkward kind of file, and scanning
awkward folders. All images are made here with Pillow (no committed blobs)."""
from __future__ import annotations

import io
import os
import struct
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

import bulk_panel.compute
from bulk_panel.compute.images import decode as decode_module
from bulk_panel.compute.images import scan as scan_module
from bulk_panel.compute.images import (
    DEFAULT_MAX_PIXELS,
    IMAGE_EXTENSIONS,
    ImageError,
    ImageSource,
    Skipped,
    decode_image,
    read_image,
)

from helpers import IS_ROOT, ODD_NAMES, STORED, encode, png_bytes, png_chunk, upright_array


POSIX = os.name == "posix"


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------


def pixels(im: Image.Image) -> np.ndarray:
    return np.asarray(im, dtype=np.int16)


def mean_abs_diff(a: Image.Image, b: Image.Image) -> float:
    assert a.size == b.size, (a.size, b.size)
    return float(np.abs(pixels(a) - pixels(b)).mean())


def assert_rgb(im: Image.Image) -> None:
    assert im.mode == "RGB"
    assert type(im) is Image.Image  # a plain, loaded image, not a file-backed ImageFile


def reason_of(data: bytes, **kwargs) -> str:
    with pytest.raises(ImageError) as info:
        decode_image(data, **kwargs)
    reason = str(info.value)
    assert reason and "\n" not in reason
    return reason


# --------------------------------------------------------------------------------------
# constants and basics
# --------------------------------------------------------------------------------------


def test_extensions():
    base = {".jpg", ".jpeg", ".jpe", ".png", ".gif", ".bmp", ".dib", ".tif", ".tiff", ".webp"}
    assert base <= IMAGE_EXTENSIONS
    assert all(ext.startswith(".") and ext == ext.lower() for ext in IMAGE_EXTENSIONS)
    registered = Image.registered_extensions()
    for ext in (".heic", ".heif", ".avif"):
        assert (ext in IMAGE_EXTENSIONS) == (ext in registered)
    assert IMAGE_EXTENSIONS - base <= {".heic", ".heif", ".avif"}
    assert DEFAULT_MAX_PIXELS == 200_000_000


UI_PACKAGES = ("panel", "holoviews", "bokeh")


def test_compute_layer_imports_no_ui():
    """Every module under bulk_panel/compute (found by walking the folder) imports, in a fresh
    process, without bringing in Panel, HoloViews or Bokeh."""
    import subprocess

    compute = Path(bulk_panel.compute.__file__).resolve().parent
    modules = []
    for path in sorted(compute.rglob("*.py")):
        parts = path.relative_to(compute.parent.parent).with_suffix("").parts
        modules.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    assert "bulk_panel.compute" in modules and "bulk_panel.compute.pipeline" in modules
    assert "bulk_panel.compute.images.scan" in modules  # subpackages too
    script = ("import importlib, sys\n"
              "for name in sys.argv[1:]:\n"
              "    importlib.import_module(name)\n"
              f"    print(name, sorted({{m.split('.')[0] for m in sys.modules}} & {set(UI_PACKAGES)!r}))\n")
    done = subprocess.run([sys.executable, "-c", script, *modules], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert [line.split()[0] for line in lines] == modules  # each imported, in turn
    assert all(line.endswith(" []") for line in lines), [line for line in lines if not line.endswith(" []")]
    for path in compute.rglob("*.py"):  # nor lazily, inside a function
        source = path.read_text()
        for name in UI_PACKAGES:
            assert f"import {name}" not in source and f"from {name}" not in source, (path.name, name)


def test_rgb_jpeg_roundtrip():
    arr = upright_array()
    rgb, size = decode_image(encode(Image.fromarray(arr), "JPEG", quality=95))
    assert_rgb(rgb)
    assert size == (48, 32) == rgb.size
    assert np.abs(pixels(rgb) - arr.astype(np.int16)).mean() < 3


@pytest.mark.parametrize("fmt", ["PNG", "BMP", "TIFF", "WEBP"])
def test_lossless_formats_exact(fmt):
    arr = upright_array()
    options = {"lossless": True} if fmt == "WEBP" else {}
    rgb, size = decode_image(encode(Image.fromarray(arr), fmt, **options))
    assert_rgb(rgb)
    assert size == (48, 32)
    assert np.array_equal(np.asarray(rgb), arr)


# --------------------------------------------------------------------------------------
# modes
# --------------------------------------------------------------------------------------


def test_bilevel_and_grey():
    bits = Image.new("1", (4, 2), 0)
    bits.putpixel((1, 0), 1)
    rgb, _ = decode_image(encode(bits, "PNG"))
    assert rgb.getpixel((0, 0)) == (0, 0, 0) and rgb.getpixel((1, 0)) == (255, 255, 255)
    grey = Image.fromarray(np.array([[0, 77, 200, 255]], np.uint8))
    rgb, _ = decode_image(encode(grey, "PNG"))
    assert_rgb(rgb)
    assert [rgb.getpixel((x, 0)) for x in range(4)] == [(v, v, v) for v in (0, 77, 200, 255)]


def test_palette_without_transparency():
    im = Image.new("P", (4, 4), 1)
    im.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    rgb, _ = decode_image(encode(im, "PNG"))
    assert_rgb(rgb)
    assert rgb.getpixel((0, 0)) == (0, 0, 255)


@pytest.mark.parametrize("fmt", ["PNG", "GIF"])
def test_palette_transparent_index_goes_white(fmt):
    im = Image.new("P", (4, 4), 1)
    im.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)
    im.putpixel((0, 0), 0)  # black, but transparent
    rgb, _ = decode_image(encode(im, fmt, transparency=0))
    assert_rgb(rgb)
    assert rgb.getpixel((0, 0)) == (255, 255, 255)
    assert rgb.getpixel((3, 3)) == (0, 0, 255)


def test_transparent_colour_key_goes_white():
    rgb_im = Image.new("RGB", (2, 1), (1, 2, 3))
    rgb_im.putpixel((1, 0), (9, 9, 9))
    rgb, _ = decode_image(encode(rgb_im, "PNG", transparency=(1, 2, 3)))
    assert [rgb.getpixel((x, 0)) for x in range(2)] == [(255, 255, 255), (9, 9, 9)]
    grey = Image.new("L", (2, 1), 10)
    grey.putpixel((1, 0), 20)
    rgb, _ = decode_image(encode(grey, "PNG", transparency=10))
    assert [rgb.getpixel((x, 0)) for x in range(2)] == [(255, 255, 255), (20, 20, 20)]


def test_palette_partial_alpha_blends_onto_white():
    im = Image.new("P", (2, 1), 0)
    im.putpalette([0, 0, 0] * 256)
    im.putpixel((1, 0), 1)
    rgb, _ = decode_image(encode(im, "PNG", transparency=bytes([0, 128])))
    assert rgb.getpixel((0, 0)) == (255, 255, 255)
    assert all(abs(c - 127) <= 1 for c in rgb.getpixel((1, 0)))


def test_grey_alpha_composites_onto_white():
    la = Image.new("LA", (3, 1))
    la.putdata([(0, 0), (0, 255), (0, 128)])
    rgb, _ = decode_image(encode(la, "PNG"))
    assert_rgb(rgb)
    assert rgb.getpixel((0, 0)) == (255, 255, 255)
    assert rgb.getpixel((1, 0)) == (0, 0, 0)
    assert all(abs(c - 127) <= 1 for c in rgb.getpixel((2, 0)))


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "TIFF"])
def test_rgba_composites_onto_white(fmt):
    rgba = Image.new("RGBA", (3, 1))
    rgba.putdata([(10, 20, 30, 0), (10, 20, 30, 255), (0, 0, 0, 128)])
    options = {"lossless": True} if fmt == "WEBP" else {}
    rgb, _ = decode_image(encode(rgba, fmt, **options))
    assert_rgb(rgb)
    assert rgb.getpixel((0, 0)) == (255, 255, 255)
    assert rgb.getpixel((1, 0)) == (10, 20, 30)
    assert all(abs(c - 127) <= 1 for c in rgb.getpixel((2, 0)))


def test_palette_alpha_tiff_composites_onto_white():
    pa = Image.new("PA", (2, 1))
    pa.putpalette([0, 0, 255] * 256)
    pa.putdata([(0, 0), (0, 255)])
    data = encode(pa, "TIFF")
    assert Image.open(io.BytesIO(data)).mode == "PA"
    rgb, _ = decode_image(data)
    assert rgb.getpixel((0, 0)) == (255, 255, 255)
    assert rgb.getpixel((1, 0)) == (0, 0, 255)


@pytest.mark.parametrize(
    ("mode", "value", "expected"),
    [
        ("La", (100, 0), (255, 255, 255)),  # premultiplied grey, fully transparent
        ("La", (50, 128), (177, 177, 177)),  # 50 + (255 - 128)
        ("RGBa", (0, 0, 0, 0), (255, 255, 255)),
        ("RGBa", (100, 0, 0, 255), (100, 0, 0)),
        ("HSV", (0, 255, 255), (255, 0, 0)),
        ("YCbCr", (128, 128, 128), (128, 128, 128)),
        ("LAB", (255, 128, 128), (254, 255, 254)),  # L*=100: white
        ("RGBX", (1, 2, 3, 0), (1, 2, 3)),
    ],
)
def test_in_memory_modes(mode, value, expected):
    """Modes Pillow can hold but rarely writes to a file go through the same conversion."""
    rgb = decode_module._to_rgb(Image.new(mode, (2, 2), value))
    assert_rgb(rgb)
    assert all(abs(a - b) <= 1 for a, b in zip(rgb.getpixel((0, 0)), expected))


def _grey_cases():
    rng = np.random.default_rng(5)
    grey = rng.integers(0, 256, (9, 7), dtype=np.uint8)
    la = Image.merge("LA", (Image.fromarray(grey), Image.fromarray(rng.integers(0, 256, (9, 7), dtype=np.uint8))))
    return {
        "L png": encode(Image.fromarray(grey), "PNG"),
        "L jpeg": encode(Image.fromarray(grey), "JPEG", quality=90),
        "1 png": encode(Image.fromarray(grey > 128), "PNG"),
        "LA png": encode(la, "PNG"),
        "16-bit png": encode(Image.fromarray(grey.astype(np.uint16) * 257), "PNG"),
        "float tiff": encode(Image.fromarray(grey.astype(np.float32) / 7), "TIFF"),
        "16-bit with transparent value": png_bytes(2, 1, 16, 0, b"\x00" + struct.pack(">HH", 1000, 2000))[:33]
        + png_chunk(b"tRNS", struct.pack(">H", 1000))
        + png_bytes(2, 1, 16, 0, b"\x00" + struct.pack(">HH", 1000, 2000))[33:],
    }


@pytest.mark.parametrize("case", list(_grey_cases()))
def test_grey_decoding_keeps_one_band_with_the_same_values(case):
    """``grey=True`` (what the embedder asks for): a greyscale image stays L, and its band is
    exactly each band of the RGB decode (composited onto white the same way)."""
    data = _grey_cases()[case]
    rgb, size = decode_image(data)
    grey, grey_size = decode_image(data, grey=True)
    assert grey.mode == "L" and type(grey) is Image.Image and grey_size == size
    assert np.array_equal(np.asarray(rgb), np.repeat(np.asarray(grey)[:, :, None], 3, axis=2))


def test_grey_decoding_leaves_colour_and_keyed_grey_as_rgb():
    colour = encode(Image.fromarray(upright_array(8, 6)), "PNG")
    keyed = encode(Image.new("L", (2, 2), 7), "PNG", transparency=7)
    for data in (colour, keyed):
        grey, _ = decode_image(data, grey=True)
        assert_rgb(grey)
        assert np.array_equal(np.asarray(grey), np.asarray(decode_image(data)[0]))


def test_cmyk_jpeg_close_to_rgb_twin():
    twin = Image.fromarray(upright_array(64, 48))
    data = encode(twin.convert("CMYK"), "JPEG", quality=95)
    assert b"Adobe" in data  # Pillow writes Adobe (inverted) CMYK
    with Image.open(io.BytesIO(data)) as raw:
        assert raw.mode == "CMYK"
    rgb, size = decode_image(data)
    assert_rgb(rgb)
    assert size == (64, 48)
    assert mean_abs_diff(rgb, twin) < 4


@pytest.mark.parametrize("fmt", ["TIFF"])
def test_cmyk_lab_ycbcr_tiff(fmt):
    twin = Image.fromarray(upright_array())
    for mode in ("CMYK", "LAB", "YCbCr"):
        data = encode(twin.convert(mode), fmt)
        with Image.open(io.BytesIO(data)) as raw:
            assert raw.mode == mode
        rgb, _ = decode_image(data)
        assert_rgb(rgb)
        assert mean_abs_diff(rgb, twin) < 4, mode


def test_16bit_png_scaled_not_clipped():
    values = np.array([[0, 257, 1000, 32768, 65535, 65280]], np.uint16)
    data = encode(Image.fromarray(values), "PNG")
    with Image.open(io.BytesIO(data)) as raw:
        assert raw.mode.startswith("I")  # 'I;16' in Pillow 13
        clipped = raw.convert("L")  # what the naive conversion would give
        assert clipped.getpixel((2, 0)) == 255
    rgb, _ = decode_image(data)
    assert_rgb(rgb)
    got = [rgb.getpixel((x, 0))[0] for x in range(values.shape[1])]
    assert got == [0, 1, 4, 128, 255, 254]
    assert all(len(set(rgb.getpixel((x, 0)))) == 1 for x in range(values.shape[1]))


def test_16bit_big_endian_tiff_scaled():
    im = Image.new("I;16B", (2, 1), 0)
    im.putpixel((1, 0), 51400)
    data = encode(im, "TIFF")
    with Image.open(io.BytesIO(data)) as raw:
        assert raw.mode == "I;16B"
    rgb, _ = decode_image(data)
    assert rgb.getpixel((0, 0)) == (0, 0, 0)
    assert rgb.getpixel((1, 0)) == (200, 200, 200)


def test_32bit_int_tiff_in_16bit_range_scaled():
    data = encode(Image.fromarray(np.array([[0, 65535, 25700]], np.int32)), "TIFF")
    with Image.open(io.BytesIO(data)) as raw:
        assert raw.mode == "I"
    rgb, _ = decode_image(data)
    assert [rgb.getpixel((x, 0))[0] for x in range(3)] == [0, 255, 100]


def test_16bit_grey_png_with_transparent_value():
    data = png_bytes(2, 1, 16, 0, b"\x00" + struct.pack(">HH", 1000, 2000))
    trns = png_chunk(b"tRNS", struct.pack(">H", 1000))
    data = data[:33] + trns + data[33:]  # tRNS goes after the 33-byte signature+IHDR
    rgb, _ = decode_image(data)
    assert rgb.getpixel((0, 0)) == (255, 255, 255)
    assert rgb.getpixel((1, 0)) == (8, 8, 8)  # 2000 / 257


def test_float_tiff_scaled_to_min_max():
    values = np.array([[-1.0, 1.0, 3.0, np.nan]], np.float32)
    data = encode(Image.fromarray(values), "TIFF")
    with Image.open(io.BytesIO(data)) as raw:
        assert raw.mode == "F"
    rgb, _ = decode_image(data)
    assert [rgb.getpixel((x, 0))[0] for x in range(4)] == [0, 128, 255, 0]


def test_16bit_rgb_png():
    # one row, filter byte 0, one RGB pixel of three 16-bit samples
    data = png_bytes(1, 1, 16, 2, b"\x00" + struct.pack(">HHH", 0xABCD, 0x1234, 0xFEFF))
    rgb, size = decode_image(data)
    assert_rgb(rgb)
    assert size == (1, 1)
    assert all(abs(a - b) <= 1 for a, b in zip(rgb.getpixel((0, 0)), (0xAB, 0x12, 0xFE)))


def test_gif_first_frame():
    frames = [Image.new("RGB", (8, 6), (255, 0, 0)), Image.new("RGB", (8, 6), (0, 0, 255))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50)
    with Image.open(io.BytesIO(data)) as raw:
        assert raw.n_frames == 2
    rgb, size = decode_image(data)
    assert_rgb(rgb)
    assert size == (8, 6)
    assert rgb.getpixel((0, 0)) == (255, 0, 0)


def test_animated_webp_first_frame():
    frames = [Image.new("RGB", (8, 6), (255, 0, 0)), Image.new("RGB", (8, 6), (0, 0, 255))]
    data = encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True)
    rgb, _ = decode_image(data)
    assert rgb.getpixel((0, 0)) == (255, 0, 0)


# --------------------------------------------------------------------------------------
# EXIF orientation
# --------------------------------------------------------------------------------------

FORMAT_OPTIONS = {
    "JPEG": ("JPEG", {"quality": 95}),
    "PNG": ("PNG", {}),
    "TIFF": ("TIFF", {}),  # Pillow 13 orients raw TIFFs itself while loading
    "TIFF-LZW": ("TIFF", {"compression": "tiff_lzw"}),  # ... and libtiff-decoded ones
    "WEBP": ("WEBP", {"lossless": True}),
}


@pytest.mark.parametrize("kind", list(FORMAT_OPTIONS))
@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_gives_upright_twin(kind, orientation):
    fmt, options = FORMAT_OPTIONS[kind]
    upright = upright_array()
    stored = np.ascontiguousarray(STORED[orientation](upright))
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(Image.fromarray(stored), fmt, exif=exif, **options)
    rgb, size = decode_image(data)
    assert_rgb(rgb)
    assert size == (48, 32) == rgb.size
    diff = np.abs(pixels(rgb) - upright.astype(np.int16)).mean()
    assert diff < (4 if fmt == "JPEG" else 0.01), (orientation, diff)


def test_orientation_swaps_reported_size():
    exif = Image.Exif()
    exif[0x0112] = 6
    _, size = decode_image(encode(Image.new("RGB", (40, 30)), "JPEG", exif=exif))
    assert size == (30, 40)


def test_broken_or_odd_orientation_is_ignored():
    for value in (0, 9, 65535):
        exif = Image.Exif()
        exif[0x0112] = value
        rgb, size = decode_image(encode(Image.new("RGB", (40, 30)), "JPEG", exif=exif))
        assert size == (40, 30) == rgb.size


# --------------------------------------------------------------------------------------
# JPEG draft
# --------------------------------------------------------------------------------------


def gradient_jpeg(width: int, height: int, **kwargs) -> bytes:
    arr = np.zeros((height, width, 3), np.uint8)
    arr[..., 0] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
    return encode(Image.fromarray(arr), "JPEG", **kwargs)


def test_jpeg_draft_keeps_full_size_but_decodes_small():
    data = gradient_jpeg(2400, 1800)
    rgb, size = decode_image(data)
    assert size == (2400, 1800)
    assert rgb.size == (600, 450)  # 1/4 scale keeps both sides >= 448
    assert_rgb(rgb)
    full, size = decode_image(data, draft_size=None)
    assert size == full.size == (2400, 1800)
    small, _ = decode_image(data, draft_size=224)
    assert small.size == (300, 225)


def test_jpeg_draft_with_rotation():
    exif = Image.Exif()
    exif[0x0112] = 6
    rgb, size = decode_image(gradient_jpeg(2000, 1200, exif=exif))
    assert size == (1200, 2000)
    assert rgb.size == (600, 1000)


def test_jpeg_draft_greyscale_and_cmyk():
    grey = encode(Image.new("L", (1800, 1800), 90), "JPEG")
    rgb, size = decode_image(grey)
    assert size == (1800, 1800) and rgb.size == (450, 450)
    assert_rgb(rgb)
    assert all(abs(c - 90) <= 1 for c in rgb.getpixel((10, 10)))
    cmyk = encode(Image.new("RGB", (1800, 1800), (200, 30, 60)).convert("CMYK"), "JPEG")
    rgb, size = decode_image(cmyk)
    assert size == (1800, 1800) and rgb.size == (450, 450)
    assert all(abs(a - b) <= 3 for a, b in zip(rgb.getpixel((10, 10)), (200, 30, 60)))


# --------------------------------------------------------------------------------------
# bad files
# --------------------------------------------------------------------------------------


def test_empty_bytes():
    assert reason_of(b"") == "empty file"


def test_text_is_not_an_image():
    assert reason_of(b"hello, I am a text file\n") == "not an image (cannot identify image file)"


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "TIFF", "BMP"])
def test_truncated(fmt):
    noise = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    data = encode(Image.fromarray(noise), fmt)
    assert reason_of(data[: len(data) // 2]) == "truncated image data"


def test_truncated_is_not_loaded_leniently():
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_huge_declared_png_is_refused_quickly():
    data = png_bytes(100_000, 100_000, 8, 2, b"\x00" * 16)
    assert len(data) < 100
    start = time.perf_counter()
    reason = reason_of(data)
    assert time.perf_counter() - start < 1.0
    assert reason.startswith("too large")
    assert "100000x100000" in reason


def test_max_pixels_is_ours():
    data = encode(Image.new("RGB", (100, 100)), "PNG")
    assert reason_of(data, max_pixels=5000) == "too large: declares 100x100 pixels (limit 5000)"
    rgb, size = decode_image(data, max_pixels=10_000)
    assert size == (100, 100)


def test_pillow_bomb_thresholds_without_changing_them(monkeypatch):
    """Pillow warns above MAX_IMAGE_PIXELS and fails above twice that; neither leaks."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    in_band = encode(Image.new("RGB", (40, 40)), "PNG")  # 1600 pixels: Pillow only warns
    beyond = encode(Image.new("RGB", (50, 50)), "PNG")  # 2500 pixels: Pillow refuses
    filters = list(warnings.filters)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any leaked warning fails the test
        _, size = decode_image(in_band, max_pixels=10_000)  # our limit allows it
        assert size == (40, 40)
        assert reason_of(in_band, max_pixels=1500) == (
            "too large: declares 40x40 pixels (limit 1500)"
        )
        assert reason_of(in_band, max_pixels=1000) == (
            "too large: declares 40x40 pixels (limit 1000)"
        )
        assert reason_of(beyond, max_pixels=10_000) == (
            "too large: declares 50x50 pixels (limit 2000)"
        )
    assert warnings.filters == filters
    assert Image.MAX_IMAGE_PIXELS == 1000


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow may warn while loading junk
def test_corrupted_files_give_one_line_reasons():
    """Random damage anywhere never escapes as anything but a one-line ImageError."""
    rng = np.random.default_rng(7)
    noise = Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8))
    samples = [
        encode(noise, "JPEG"),
        encode(noise, "PNG"),
        encode(noise.convert("P"), "GIF"),
        encode(noise, "TIFF"),
        encode(noise, "BMP"),
        encode(noise, "WEBP"),
    ]
    for data in samples:
        for _ in range(40):
            damaged = bytearray(data)
            for where in rng.integers(0, min(len(data), 200), 3):
                damaged[where] = int(rng.integers(0, 256))
            try:
                rgb, _ = decode_image(bytes(damaged))
            except ImageError as err:
                assert str(err) and "\n" not in str(err)
                assert "BytesIO" not in str(err)
            else:
                assert_rgb(rgb)


# --------------------------------------------------------------------------------------
# read_image
# --------------------------------------------------------------------------------------


def test_read_image(tmp_path):
    path = tmp_path / "a b.png"
    path.write_bytes(encode(Image.new("RGB", (5, 4), (1, 2, 3)), "PNG"))
    rgb, size = read_image(path)
    assert size == (5, 4) and rgb.getpixel((0, 0)) == (1, 2, 3)
    rgb, size = read_image(str(path), draft_size=None, max_pixels=100)
    assert size == (5, 4)


def test_read_image_errors(tmp_path):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(ImageError) as info:
        read_image(empty)
    assert str(info.value) == "empty file" and info.value.path == str(empty)

    with pytest.raises(ImageError, match="^file not found$"):
        read_image(tmp_path / "missing.jpg")
    with pytest.raises(ImageError, match="^not a regular file"):
        read_image(tmp_path)

    text = tmp_path / "notes.jpg"
    text.write_text("not really a picture")
    with pytest.raises(ImageError, match=r"^not an image \(cannot identify image file\)$"):
        read_image(text)


@pytest.mark.skipif(not POSIX or IS_ROOT, reason="needs POSIX permissions and a non-root user")
def test_read_image_permission_denied(tmp_path):
    path = tmp_path / "secret.png"
    path.write_bytes(encode(Image.new("RGB", (2, 2)), "PNG"))
    path.chmod(0)
    try:
        with pytest.raises(ImageError, match="^permission denied$"):
            read_image(path)
    finally:
        path.chmod(0o644)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_read_image_fifo_does_not_hang(tmp_path):
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    with pytest.raises(ImageError, match="^not a regular file$"):
        read_image(fifo)


# --------------------------------------------------------------------------------------
# scanning
# --------------------------------------------------------------------------------------


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def find(root, **kwargs) -> tuple[list[str], list[Skipped]]:
    return ImageSource(root=str(root), **kwargs).find()


def test_find_basic(tmp_path):
    for rel in ["b.jpg", "a/c.PNG", "a/d/e.JpEg", "a/d/f.tiff", "z.webp", "a/empty.gif"]:
        touch(tmp_path / rel)
    (tmp_path / "a" / "empty.gif").write_bytes(b"")  # zero bytes: still listed
    for rel in ["notes.txt", "a/raw.cr2", "a/d/noext", "a/d/jpg", "a/archive.jpg.zip"]:
        touch(tmp_path / rel)
    (tmp_path / "folder.jpg").mkdir()  # a folder with an image-like name is walked
    touch(tmp_path / "folder.jpg" / "inside.bmp")
    paths, skipped = find(tmp_path)
    assert paths == sorted(paths)
    assert paths == [
        "a/c.PNG",
        "a/d/e.JpEg",
        "a/d/f.tiff",
        "a/empty.gif",
        "b.jpg",
        "folder.jpg/inside.bmp",
        "z.webp",
    ]
    assert skipped == []


def test_find_not_recursive(tmp_path):
    touch(tmp_path / "top.jpg")
    touch(tmp_path / "sub" / "deep.jpg")
    assert find(tmp_path, recursive=False) == (["top.jpg"], [])


def test_find_hidden(tmp_path):
    touch(tmp_path / "shown.jpg")
    touch(tmp_path / ".hidden.jpg")
    touch(tmp_path / ".thumbs" / "t.jpg")
    touch(tmp_path / "a" / ".git" / "x.png")
    assert find(tmp_path) == (["shown.jpg"], [])
    paths, _ = find(tmp_path, include_hidden=True)
    assert paths == [".hidden.jpg", ".thumbs/t.jpg", "a/.git/x.png", "shown.jpg"]


def test_find_hidden_root_is_fine(tmp_path):
    root = tmp_path / ".pictures"
    touch(root / "a.jpg")
    assert find(root) == (["a.jpg"], [])


def test_find_exclude(tmp_path):
    touch(tmp_path / "keep" / "a.jpg")
    touch(tmp_path / "cache" / "thumb.jpg")
    touch(tmp_path / "cache" / "deeper" / "t.png")
    paths, skipped = find(tmp_path, exclude=[str(tmp_path / "cache"), str(tmp_path / "nope")])
    assert paths == ["keep/a.jpg"] and skipped == []
    if POSIX:  # the exclude folder named through a symlink still matches by real path
        link = tmp_path.parent / f"{tmp_path.name}-cache-link"
        os.symlink(tmp_path / "cache", link)
        try:
            assert find(tmp_path, exclude=[str(link)]) == (["keep/a.jpg"], [])
        finally:
            os.unlink(link)
    assert find(tmp_path, exclude=[str(tmp_path)]) == ([], [])


def test_exclude_param_only_takes_strings():
    with pytest.raises(Exception):
        ImageSource(root=".", exclude=[3])


@pytest.mark.skipif(not POSIX, reason="needs symlinks")
def test_symlink_loop_terminates(tmp_path):
    touch(tmp_path / "a" / "b" / "pic.jpg")
    os.symlink("..", tmp_path / "a" / "b" / "up")  # a/b/up -> a
    os.symlink(".", tmp_path / "self")  # the root itself
    os.symlink("loop2", tmp_path / "loop1")  # a link chain that never ends
    os.symlink("loop1", tmp_path / "loop2")
    start = time.perf_counter()
    paths, skipped = find(tmp_path)
    assert time.perf_counter() - start < 2
    assert paths == ["a/b/pic.jpg"]
    assert Skipped("a/b/up/", "symlink loop") in skipped
    assert Skipped("self/", "symlink loop") in skipped
    assert Skipped("loop1", "broken symlink") in skipped
    assert Skipped("loop2", "broken symlink") in skipped


@pytest.mark.skipif(not POSIX, reason="needs symlinks")
def test_symlinks_inside_are_followed(tmp_path):
    touch(tmp_path / "real" / "r.jpg")
    touch(tmp_path / ".stash" / "s.png")
    os.symlink("real", tmp_path / "alias")  # the same folder again
    os.symlink(".stash", tmp_path / "stash")  # a hidden folder shown through a link
    os.symlink("real/r.jpg", tmp_path / "linked.jpg")  # a symlinked file
    paths, skipped = find(tmp_path)
    assert paths == ["linked.jpg", "real/r.jpg", "stash/s.png"]
    assert skipped == [Skipped("alias/", "symlink to a folder already scanned")]


@pytest.mark.skipif(not POSIX, reason="needs symlinks")
def test_symlink_outside_and_broken(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    touch(root / "in.jpg")
    touch(outside / "o.jpg")
    touch(outside / "o.txt")
    os.symlink(outside, root / "out_dir")
    os.symlink(outside / "o.jpg", root / "out_file.jpg")
    os.symlink(outside / "o.txt", root / "out_notes.txt")  # not an image name: silent
    os.symlink(root / "gone.jpg", root / "dangling.jpg")
    paths, skipped = find(root)
    assert paths == ["in.jpg"]
    assert skipped == [
        Skipped("dangling.jpg", "broken symlink"),
        Skipped("out_dir/", "symlink points outside the folder"),
        Skipped("out_file.jpg", "symlink points outside the folder"),
    ]


@pytest.mark.skipif(not POSIX, reason="needs symlinks")
def test_root_through_symlink(tmp_path):
    touch(tmp_path / "real" / "a.jpg")
    os.symlink("a.jpg", tmp_path / "real" / "b.jpg")  # inside the real root
    os.symlink(tmp_path / "real", tmp_path / "link")
    assert find(tmp_path / "link") == (["a.jpg", "b.jpg"], [])


@pytest.mark.skipif(not POSIX or IS_ROOT, reason="needs POSIX permissions and a non-root user")
def test_unreadable_folder_reported(tmp_path):
    touch(tmp_path / "ok.jpg")
    locked = tmp_path / "locked"
    touch(locked / "x.jpg")
    locked.chmod(0)
    try:
        paths, skipped = find(tmp_path)
    finally:
        locked.chmod(0o755)
    assert paths == ["ok.jpg"]
    assert skipped == [Skipped("locked/", "permission denied")]


def test_unreadable_folder_reported_simulated(tmp_path, monkeypatch):
    """The same as above without relying on permissions (root ignores chmod)."""
    touch(tmp_path / "ok.jpg")
    touch(tmp_path / "locked" / "x.jpg")
    touch(tmp_path / "locked" / "inner" / "y.jpg")
    real_scandir = os.scandir

    def scandir(path):
        if os.path.basename(path) == "locked":
            raise PermissionError(13, "Permission denied", path)
        return real_scandir(path)

    monkeypatch.setattr(scan_module.os, "scandir", scandir)
    assert find(tmp_path) == (["ok.jpg"], [Skipped("locked/", "permission denied")])
    with pytest.raises(PermissionError) as info:  # the root itself: nothing to list
        find(tmp_path / "locked")
    assert "permission denied" in str(info.value) and "locked" in str(info.value)


def test_read_image_permission_denied_simulated(tmp_path, monkeypatch):
    path = touch(tmp_path / "secret.png")

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(decode_module.os, "open", denied)
    with pytest.raises(ImageError, match="^permission denied$") as info:
        read_image(path)
    assert info.value.path == str(path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_special_files_are_not_listed(tmp_path):
    os.mkfifo(tmp_path / "pipe.jpg")
    os.mkfifo(tmp_path / "pipe.txt")
    assert find(tmp_path) == ([], [Skipped("pipe.jpg", "not a regular file")])


def test_odd_names_returned_intact(tmp_path):
    for name in ODD_NAMES:
        touch(tmp_path / "dir with space" / name)
    paths, skipped = find(tmp_path)
    assert skipped == []
    assert paths == sorted("dir with space/" + name for name in ODD_NAMES)
    for rel in paths:
        assert (tmp_path / rel).is_file()


@pytest.mark.skipif(sys.platform != "linux", reason="needs a filesystem taking raw bytes")
def test_undecodable_name_round_trips(tmp_path):
    raw = os.fsencode(str(tmp_path)) + b"/latin1-\xe9t\xe9.jpg"
    with open(raw, "wb") as handle:
        handle.write(b"x")
    paths, _ = find(tmp_path)
    assert paths == [os.fsdecode(b"latin1-\xe9t\xe9.jpg")]
    assert os.path.exists(os.path.join(str(tmp_path), paths[0]))


def test_missing_root(tmp_path):
    missing = tmp_path / "no such folder"
    with pytest.raises(FileNotFoundError) as info:
        find(missing)
    message = str(info.value)
    assert str(missing) in message and "\n" not in message and "does not exist" in message


def test_root_is_a_file(tmp_path):
    path = touch(tmp_path / "a.jpg")
    with pytest.raises(NotADirectoryError, match="not a folder"):
        find(path)


def test_empty_root():
    with pytest.raises(FileNotFoundError, match="no folder"):
        ImageSource().find()


def test_scan_gives_records(tmp_path):
    touch(tmp_path / "b.png")
    touch(tmp_path / "a" / "c.jpg")
    docs = ImageSource(root=str(tmp_path)).scan()
    assert [doc.path for doc in docs] == ["a/c.jpg", "b.png"]
    assert docs[0].width == 0 and docs[0].embedding is None


def test_find_many_files_quickly(tmp_path):
    names = []
    for folder in range(10):
        sub = tmp_path / f"f{folder:02d}"
        sub.mkdir()
        for i in range(60):
            name = f"{i:04d}.{'jpg' if i % 3 else 'txt'}"
            (sub / name).write_bytes(b"")
            if i % 3:
                names.append(f"f{folder:02d}/{name}")
    start = time.perf_counter()
    paths, skipped = find(tmp_path)
    assert time.perf_counter() - start < 2.0  # ~5 ms; generous for a loaded machine
    assert paths == sorted(names) and skipped == []


def test_every_parameter_is_documented():
    for name, parameter in ImageSource.param.objects().items():
        if name != "name":
            assert parameter.doc, name


def test_resolve_inside_keeps_results_paths_in_their_folder(tmp_path):
    from bulk_panel.compute.images import resolve_inside

    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    (root / "a" / "x.png").write_bytes(b"x")
    (tmp_path / "secret.png").write_bytes(b"s")
    (root / "escape.png").symlink_to(tmp_path / "secret.png")
    assert resolve_inside(root, "a/x.png") == str((root / "a" / "x.png").resolve())
    for bad in ["../secret.png", "a/../../secret.png", str(tmp_path / "secret.png"), "escape.png", "", ".", "a/\x00.png"]:
        assert resolve_inside(root, bad) is None, bad
