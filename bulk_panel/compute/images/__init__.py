"""Finding image files in a folder and decoding them safely into RGB (no UI imports).

- :mod:`.decode`: bytes or a file into a fully loaded RGB image and its displayed size, or
  an :class:`ImageError` with a one-line reason; the image extensions, :class:`Skipped`.
- :mod:`.scan`: :class:`ImageSource` walks a folder and lists candidate image files;
  :func:`resolve_inside` keeps a path from a results file inside its folder.

>>> from bulk_panel.compute.images import ImageSource, read_image
>>> paths, skipped = ImageSource(root="photos").find()
>>> rgb, (width, height) = read_image("photos/" + paths[0])
"""
from .decode import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, ImageError, Skipped, decode_image, read_image
from .scan import ImageSource, resolve_inside

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_EXTENSIONS",
    "ImageError",
    "ImageSource",
    "Skipped",
    "decode_image",
    "read_image",
    "resolve_inside",
]
