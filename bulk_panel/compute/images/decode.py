"""Decoding image bytes or files safely into fully loaded RGB images.

:func:`decode_image` / :func:`read_image` turn bytes or a file into a fully loaded RGB
``PIL.Image`` plus the image's displayed size (after EXIF orientation), raising
:class:`ImageError` (a one-line reason) for anything unusable: empty, not an image,
truncated, too large (decompression bombs), unreadable. :data:`IMAGE_EXTENSIONS` names the
files worth trying; :class:`Skipped` is a file left out and why.

>>> rgb, (width, height) = read_image("photos/cat.jpg")
>>> rgb, size = decode_image(data, draft_size=None)
"""
from __future__ import annotations

import io
import os
import re
import stat
import threading
import warnings
from typing import NamedTuple

import numpy as np
from PIL import Image, UnidentifiedImageError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_EXTENSIONS",
    "ImageError",
    "Skipped",
    "decode_image",
    "read_image",
]

_BASE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".gif", ".bmp", ".dib", ".tif", ".tiff", ".webp"}
)
_PLUGIN_EXTENSIONS = frozenset({".heic", ".heif", ".avif"})  # only if a plugin handles them


def _image_extensions() -> frozenset[str]:
    registered = Image.registered_extensions()  # imports Pillow's plugins once
    return _BASE_EXTENSIONS | {ext for ext in _PLUGIN_EXTENSIONS if ext in registered}


IMAGE_EXTENSIONS: frozenset[str] = _image_extensions()
"""Lowercase file suffixes (with the dot) that :meth:`ImageSource.find` treats as images."""

DEFAULT_MAX_PIXELS: int = 200_000_000
"""Largest declared width*height that :func:`decode_image` accepts (decompression bombs)."""


class ImageError(ValueError):
    """A file that cannot be used; ``str(err)`` is a one-line reason.

    Reasons look like ``'empty file'``, ``'not an image (cannot identify image file)'``,
    ``'truncated image data'``, ``'too large: declares 100000x100000 pixels (limit
    200000000)'`` or ``'permission denied'``. ``err.path`` is the file it concerns when
    known (set by :func:`read_image`), else ``None``.

    >>> Skipped(path, str(err))
    """

    def __init__(self, reason: str, path: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.path = path


class Skipped(NamedTuple):
    """A file or folder left out, and why: ``Skipped('a/b.jpg', 'broken symlink')``."""

    path: str  # relative to the root, '/'-separated; folders end with '/'
    reason: str  # one line


_ORIENTATION_TAG = 0x0112
_TRANSPOSE = {  # EXIF orientation -> the transpose that makes the stored pixels upright
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_DRAFT_FORMATS = frozenset({"JPEG", "MPO"})
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa"})
_PIXELS_RE = re.compile(r"\((\d+) pixels\)")
_FILE_OBJECT_RE = re.compile(r"\s*<_io\.\w+ object at 0x[0-9a-fA-F]+>")
_CHUNK_PIXELS = 1 << 22  # rows are converted with numpy in blocks of about this many pixels

# warnings.catch_warnings swaps process-global state; overlapping uses from several threads
# can leave a filter behind. Holding this lock around the (short, header-only) Image.open
# keeps our own calls properly nested; the expensive load() runs outside it.
_OPEN_LOCK = threading.Lock()


def _one_line(text: str, limit: int = 160) -> str:
    text = " ".join(_FILE_OBJECT_RE.sub("", text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _too_large(width: int, height: int, limit: int) -> ImageError:
    return ImageError(f"too large: declares {width}x{height} pixels (limit {limit})")


def _declared_size(data: bytes) -> tuple[int, int] | None:
    """The header size of an image Pillow refused as a bomb (open without the bomb check)."""
    Image.init()
    prefix = bytes(data[:16])
    for fmt in Image.ID:
        try:
            factory, accept = Image.OPEN[fmt]
            accepted = accept(prefix) if accept else True
            if not accepted or isinstance(accepted, str):
                continue
            im = factory(io.BytesIO(data), "")
            try:
                return im.size
            finally:
                im.close()
        except Exception:  # noqa: BLE001 - best effort, only for the error message
            continue
    return None


def _bomb_error(err: Exception, data: bytes, max_pixels: int) -> ImageError:
    """'too large' for Pillow's own DecompressionBombError/Warning."""
    limit = max_pixels
    if isinstance(err, Image.DecompressionBombError) and Image.MAX_IMAGE_PIXELS:
        limit = min(max_pixels, 2 * Image.MAX_IMAGE_PIXELS)
    size = _declared_size(data)
    if size is not None:
        return _too_large(size[0], size[1], limit)
    match = _PIXELS_RE.search(str(err))
    declared = match.group(1) if match else "more than the limit of"
    return ImageError(f"too large: declares {declared} pixels (limit {limit})")


def _orientation(im: Image.Image) -> int:
    """The EXIF orientation (1..8) still to apply to a loaded image; 1 when none or broken.

    Read after load(): a PNG's eXIf chunk may follow the pixel data, and Pillow's TIFF
    plugin applies the orientation itself while loading (and then drops the tag).
    """
    with _OPEN_LOCK, warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=r"PIL(\.|$)")  # "Corrupt EXIF data" etc.
        try:
            value = int(im.getexif().get(_ORIENTATION_TAG, 1))
        except Exception:  # noqa: BLE001 - a broken EXIF block just means "upright"
            return 1
    return value if value in _TRANSPOSE else 1


def _open(data: bytes, max_pixels: int) -> Image.Image:
    """Image.open: lazy, it reads the header only.

    Pillow's DecompressionBombWarning becomes an error when it implies exceeding
    ``max_pixels``; otherwise it is silenced (our own header check is the guard). Other
    Pillow warnings (corrupt EXIF and the like) are silenced too.
    """
    limit = Image.MAX_IMAGE_PIXELS
    bomb_action = "error" if limit is not None and max_pixels <= limit else "ignore"
    with _OPEN_LOCK, warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=r"PIL(\.|$)")
        warnings.simplefilter(bomb_action, Image.DecompressionBombWarning)
        try:
            return Image.open(io.BytesIO(data))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
            raise _bomb_error(err, data, max_pixels) from err


def _on_white(im: Image.Image, grey: bool = False) -> Image.Image:
    """Alpha-composite onto white; ``im`` is any mode Pillow can convert to RGBA (with
    ``grey``, an LA image onto a white L one: the same blend, one band instead of three)."""
    if grey and im.mode == "LA":
        out = Image.new("L", im.size, 255)
        out.paste(im.getchannel("L"), (0, 0), im.getchannel("A"))
        return out
    rgba = im if im.mode == "RGBA" else im.convert("RGBA")
    out = Image.new("RGB", rgba.size, (255, 255, 255))
    out.paste(rgba, (0, 0), rgba)
    return out


def _grey_to_rgb(im: Image.Image, grey: bool = False) -> Image.Image:
    """16-bit / 32-bit integer and float greyscale -> 8-bit RGB (``grey``: L), scaled rather
    than clipped."""
    arr = np.asarray(im)
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    out = np.empty(arr.shape, np.uint8)
    if arr.dtype.kind == "f":
        finite = np.isfinite(arr)
        lo = float(arr[finite].min()) if finite.any() else 0.0
        hi = float(arr[finite].max()) if finite.any() else 0.0
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        offset, divisor = lo, None
    else:
        lo, hi = (int(arr.min()), int(arr.max())) if arr.size else (0, 0)
        if lo >= 0 and hi <= 0xFFFF:  # a 16-bit range: value / 257, rounded
            offset, divisor, scale = 0, 257, 0.0
        else:  # 32-bit data outside the 16-bit range: stretch min..max
            offset, divisor, scale = lo, None, 255.0 / (hi - lo) if hi > lo else 0.0
    step = max(1, _CHUNK_PIXELS // max(1, arr.shape[1]))
    for row in range(0, arr.shape[0], step):
        block = arr[row : row + step]
        if divisor is not None:
            out[row : row + step] = (block.astype(np.uint32) + divisor // 2) // divisor
        else:
            scaled = (block.astype(np.float64) - offset) * scale
            scaled = np.nan_to_num(scaled, nan=0.0, posinf=255.0, neginf=0.0)
            out[row : row + step] = np.clip(np.rint(scaled), 0, 255)
    transparency = im.info.get("transparency")
    image = Image.fromarray(out)
    if isinstance(transparency, int) and divisor is not None:
        alpha = Image.fromarray(np.where(arr == transparency, 0, 255).astype(np.uint8))
        return _on_white(Image.merge("LA", (image, alpha)), grey)
    return image if grey else image.convert("RGB")


def _to_rgb(im: Image.Image, grey: bool = False) -> Image.Image:
    """A new RGB image from a loaded image of any mode (alpha composited onto white); with
    ``grey``, a greyscale one stays one band (L)."""
    mode = im.mode
    has_key = "transparency" in im.info  # a transparent colour/index (PNG tRNS, GIF)
    if grey and not has_key:
        if mode == "L":
            return im.copy()
        if mode == "1":
            return im.convert("L")
    if mode in _ALPHA_MODES:
        return _on_white(im, grey)
    if mode == "La":  # premultiplied; Pillow converts La -> LA but not La -> RGBA
        return _on_white(im.convert("LA"), grey)
    if mode == "P":
        palette_alpha = im.palette is not None and im.palette.mode == "RGBA"
        return _on_white(im) if has_key or palette_alpha else im.convert("RGB")
    if mode in ("1", "L", "RGB") and has_key:
        return _on_white(im)
    if mode == "I" or mode == "F" or mode.startswith("I;16"):
        return _grey_to_rgb(im, grey)
    return im.convert("RGB")  # RGB (copy), L, 1, CMYK, YCbCr, LAB, HSV, RGBX, ...


def decode_image(
    data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS, draft_size: int | None = 448, grey: bool = False
) -> tuple[Image.Image, tuple[int, int]]:
    """Decode image bytes into a new, fully loaded RGB image and its displayed full size
    (``grey``: a greyscale image as L, one band, for work that treats bands alike).

    ``(width, height)`` is the size after EXIF orientation and before any JPEG draft
    reduction (``draft_size`` lets libjpeg decode at 1/2..1/8 scale while both sides stay
    >= ``draft_size``). Animated images give their first frame. Raises :class:`ImageError`.

    >>> rgb, (width, height) = decode_image(open("cat.jpg", "rb").read())
    """
    if not data:
        raise ImageError("empty file")
    im: Image.Image | None = None
    try:
        im = _open(data, max_pixels)
        width, height = im.size  # the header's (TIFF: already oriented) full size
        if width * height > max_pixels:
            raise _too_large(width, height, max_pixels)
        if draft_size and im.format in _DRAFT_FORMATS:
            im.draft("RGB", (draft_size, draft_size))
        im.load()  # the full decode: truncated or corrupt data fails here
        orientation = _orientation(im)
        rgb = _to_rgb(im, grey)  # always a new image, never the file-backed one
        method = _TRANSPOSE.get(orientation)
        if method is not None:
            rgb = rgb.transpose(method)
            if orientation >= 5:  # the four orientations that swap the sides
                width, height = height, width
        return rgb, (width, height)
    except ImageError:
        raise
    except UnidentifiedImageError as err:
        raise ImageError("not an image (cannot identify image file)") from err
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise _bomb_error(err, data, max_pixels) from err
    except MemoryError as err:
        raise ImageError("out of memory while decoding") from err
    except EOFError as err:
        raise ImageError("truncated image data") from err
    except Exception as err:  # noqa: BLE001 - any Pillow failure becomes a reason
        message = _one_line(str(err))
        if "truncated" in message.lower():
            raise ImageError("truncated image data") from err
        detail = f"{type(err).__name__}: {message}" if message else type(err).__name__
        raise ImageError(f"cannot decode ({detail})") from err
    finally:
        if im is not None:
            im.close()


_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0)


def read_image(
    path: str | os.PathLike[str],
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    draft_size: int | None = 448,
) -> tuple[Image.Image, tuple[int, int]]:
    """Read a file and :func:`decode_image` it; ``err.path`` is set on the ImageError.

    OS errors become reasons too ('permission denied', 'file not found', ...), and
    anything but a regular file (a FIFO would block) is refused without reading.

    >>> rgb, (width, height) = read_image("photos/cat.jpg", draft_size=None)
    """
    shown = os.fspath(path)
    try:
        fd = os.open(path, _OPEN_FLAGS)  # O_NONBLOCK: opening a FIFO must not hang
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise ImageError("not a regular file", shown)
            data = handle.read()
    except ImageError:
        raise
    except PermissionError as err:
        raise ImageError("permission denied", shown) from err
    except FileNotFoundError as err:
        raise ImageError("file not found", shown) from err
    except IsADirectoryError as err:
        raise ImageError("not a regular file (a folder)", shown) from err
    except OSError as err:
        reason = f"cannot read file ({_one_line(err.strerror or str(err))})"
        raise ImageError(reason, shown) from err
    try:
        return decode_image(data, max_pixels=max_pixels, draft_size=draft_size)
    except ImageError as err:
        err.path = shown
        raise
