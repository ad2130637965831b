"""A hostile image folder, made at test time (no committed blobs), and the byte builders behind it.

>>> corpus = write_corpus(tmp_path / "hostile")
>>> corpus.good      # relative paths that must end up in the results
>>> corpus.bad       # relative path -> the start of the reason it must be skipped with
>>> corpus.twins     # relative path -> the plain file it must embed like

Every case of issue 6: empty, truncated JPEG/PNG, text and HTML named as images, a PNG declaring
100,000 × 100,000 pixels, a very large real image, CMYK, 16-bit, palette with transparency, LA,
animated GIF, EXIF orientations 1-8, awkward names (spaces, unicode, emoji, newline, quotes,
markup, 250 bytes), a symlink out of the folder, symlink loops, an unreadable file (when not
root) and exact duplicates. The pictures are the bundled demo drawings, so embeddings mean
something.
"""
from __future__ import annotations

import io
import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

DEMO = Path(__file__).resolve().parent.parent / "bulk_panel" / "demo"
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0

HOSTILE_NAME = "<img src=x onerror=alert(1)>.png"

ODD_NAMES = [
    "with space.jpg",
    "ünïcödé — 日本語.png",
    "emoji 🐱🚀.gif",
    "new\nline.jpg",
    "quotes \"double\" 'single'.jpg",
    HOSTILE_NAME,
    "back\\slash.jpg",
    "tab\there.jpg",
    "%s %n {0} $(rm -rf).webp",
    "a" * 246 + ".jpg",  # 250 bytes
]

# How each EXIF orientation stores the upright picture (the inverse of what a viewer applies),
# written independently of bulk_panel's own table.
STORED = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],  # mirrored horizontally
    3: lambda a: a[::-1, ::-1],  # rotated 180
    4: lambda a: a[::-1, :],  # mirrored vertically
    5: lambda a: a.transpose(1, 0, 2),  # row 0 is the visual left side, column 0 the top
    6: lambda a: np.rot90(a, 1),  # row 0 is the visual right side: viewer rotates 90 CW
    7: lambda a: a.transpose(1, 0, 2)[::-1, ::-1],  # row 0 right side, column 0 bottom
    8: lambda a: np.rot90(a, -1),  # row 0 is the visual left side, column 0 the bottom
}

_FORMATS = {".jpg": ("JPEG", {"quality": 92}), ".png": ("PNG", {}), ".gif": ("GIF", {}), ".webp": ("WEBP", {})}


# --------------------------------------------------------------------------------------
# byte builders
# --------------------------------------------------------------------------------------
def encode(im: Image.Image, fmt: str, **kwargs) -> bytes:
    """``im`` saved as ``fmt`` into bytes."""
    buffer = io.BytesIO()
    im.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def upright_array(width: int = 48, height: int = 32) -> np.ndarray:
    """A smooth image that looks different under every flip and rotation."""
    y, x = np.mgrid[0:height, 0:width]
    arr = np.zeros((height, width, 3), np.uint8)
    arr[..., 0] = 40 + 180 * x // (width - 1)  # red grows to the right
    arr[..., 1] = 40 + 180 * y // (height - 1)  # green grows downwards
    arr[: height // 2, : width // 3, 2] = 230  # a blue block in the top-left corner
    return arr


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)


def png_bytes(width: int, height: int, bit_depth: int, colour_type: int, raw: bytes) -> bytes:
    """A PNG made by hand: signature, IHDR, one IDAT holding ``raw`` (already filtered), IEND."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(raw))
        + png_chunk(b"IEND", b"")
    )


def png16_rgb(arr: np.ndarray) -> bytes:
    """A 16-bit RGB PNG of an 8-bit ``arr`` (each sample × 257, so it scales back exactly)."""
    h, w, _ = arr.shape
    rows = (arr.astype(">u2") * 257).reshape(h, w * 3)
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)
    return png_bytes(w, h, 16, 2, raw)


def drawing(category: str = "animals", index: int = 3) -> Image.Image:
    """A demo drawing flattened onto white (RGB)."""
    rgba = Image.open(sorted((DEMO / category).glob("*.png"))[index]).convert("RGBA")
    flat = Image.new("RGB", rgba.size, "white")
    flat.paste(rgba, mask=rgba.split()[3])
    return flat


# --------------------------------------------------------------------------------------
# the corpus
# --------------------------------------------------------------------------------------
@dataclass
class Corpus:
    """What :func:`write_corpus` wrote: which files must be used, which reported, which pairs embed alike."""

    root: Path
    good: list[str] = field(default_factory=list)
    bad: dict[str, str] = field(default_factory=dict)  # path -> reason prefix ('/'-ended for folders)
    twins: dict[str, str] = field(default_factory=dict)  # variant -> its plain twin (both good)
    duplicates: list[tuple[str, str]] = field(default_factory=list)


def write_corpus(root: Path, large_side: int = 6000) -> Corpus:
    """Write every hostile case of issue 6 into ``root`` (made fresh) and return its manifest.

    ``root`` gets a sibling ``<root>-outside`` folder that the escaping symlinks point into.
    """
    root = Path(root)
    outside = root.with_name(root.name + "-outside")
    root.mkdir(parents=True)
    outside.mkdir()
    corpus = Corpus(root=root)

    def good(rel: str, data: bytes) -> None:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
        corpus.good.append(rel)

    def bad(rel: str, reason: str, data: bytes | None = None) -> None:
        if data is not None:
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(data)
        corpus.bad[rel] = reason

    # the normalised twins and their awkward variants
    base = drawing("animals", 3)
    arr = np.asarray(base)
    good("plain/upright.png", encode(base, "PNG"))
    good("plain/upright.jpg", encode(base, "JPEG", quality=95))
    for k, store in STORED.items():
        exif = Image.Exif()
        exif[0x0112] = k
        good(f"orientation/{k}.png", encode(Image.fromarray(np.ascontiguousarray(store(arr))), "PNG", exif=exif))
        corpus.twins[f"orientation/{k}.png"] = "plain/upright.png"
    good("modes/cmyk.jpg", encode(base.convert("CMYK"), "JPEG", quality=95))
    corpus.twins["modes/cmyk.jpg"] = "plain/upright.jpg"  # the same JPEG loss, in RGB
    good("modes/16bit.png", png16_rgb(arr))
    corpus.twins["modes/16bit.png"] = "plain/upright.png"

    # other modes and formats
    other = drawing("food", 2)
    palette = other.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    good("modes/palette-transparent.png", encode(palette, "PNG", transparency=0))
    good("modes/la.png", encode(drawing("people", 1).convert("LA"), "PNG"))
    frames = [drawing("plants", 1), drawing("plants", 2).resize(drawing("plants", 1).size)]
    good("modes/animated.gif", encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=80))
    big = drawing("buildings", 1)
    big = big.resize((large_side, large_side * big.height // big.width), Image.Resampling.BICUBIC)
    good("large/very-large.jpg", encode(big, "JPEG", quality=85))

    # awkward file names, each its own picture, saved in the format its extension says
    categories = sorted(p.name for p in DEMO.iterdir() if p.is_dir())
    for i, name in enumerate(ODD_NAMES):
        fmt, options = _FORMATS[Path(name).suffix]
        picture = drawing(categories[i % len(categories)], 5 + i // len(categories))
        good(f"names/{name}", encode(picture, fmt, **options))

    # exact duplicates
    twin_bytes = encode(drawing("transportation", 4), "PNG")
    good("dup/first.png", twin_bytes)
    good("dup/same bytes.png", twin_bytes)
    corpus.duplicates.append(("dup/first.png", "dup/same bytes.png"))

    # files that must be reported, not used
    noise = Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    jpeg, png = encode(noise, "JPEG"), encode(noise, "PNG")
    bad("bad/empty.jpg", "empty file", b"")
    bad("bad/truncated.jpg", "truncated image data", jpeg[: len(jpeg) // 2])
    bad("bad/truncated.png", "truncated image data", png[: len(png) // 2])
    bad("bad/text.jpg", "not an image", b"hello, I am a text file\n")
    bad("bad/<script>alert(3)</script>.png", "not an image", b"<html><body><script>alert(3)</script></body></html>\n")
    bad("bad/huge.png", "too large", png_bytes(100_000, 100_000, 8, 2, b"\x00" * 16))

    # links: out of the folder, loops
    (outside / "secret.png").write_bytes(encode(drawing("animals", 0), "PNG"))
    os.symlink(outside / "secret.png", root / "escape.png")
    bad("escape.png", "symlink points outside the folder")
    os.symlink(outside, root / "escape-dir")
    bad("escape-dir/", "symlink points outside the folder")
    os.symlink("..", root / "plain" / "up")
    bad("plain/up/", "symlink loop")
    os.symlink("loop2.jpg", root / "loop1.jpg")
    os.symlink("loop1.jpg", root / "loop2.jpg")
    bad("loop1.jpg", "broken symlink")
    bad("loop2.jpg", "broken symlink")

    if not IS_ROOT:  # root reads anything
        bad("bad/unreadable.png", "permission denied", png)
        (root / "bad/unreadable.png").chmod(0)
    return corpus
