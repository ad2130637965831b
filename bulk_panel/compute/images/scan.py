"""Walking a folder for image files, and keeping paths from results inside their folder.

:class:`ImageSource` lists candidate image files by extension without opening them
(``find``/``scan``); problems met while walking (broken or escaping symlinks, loops,
folders that cannot be read) come back as :class:`~.decode.Skipped` entries instead of
exceptions. :func:`resolve_inside` turns a relative path read from a results file into a
real path under its folder, or None.

>>> paths, skipped = ImageSource(root="photos").find()
>>> resolve_inside("photos", paths[0])
"""
from __future__ import annotations

import heapq
import os
import stat
from typing import TYPE_CHECKING

import param

from .decode import IMAGE_EXTENSIONS, Skipped, _one_line

if TYPE_CHECKING:
    from docarray import DocList

    from ..records import ImageRecord

__all__ = ["ImageSource", "resolve_inside"]

_OUTSIDE = "symlink points outside the folder"
_BROKEN = "broken symlink"
_DENIED = "permission denied"


def _show(path: str) -> str:
    """A path for a one-line message (repr() when it holds newlines or other controls)."""
    return path if path.isprintable() else repr(path)


def _is_within(real: str, folder: str) -> bool:
    return real == folder or real.startswith(folder if folder.endswith(os.sep) else folder + os.sep)


def resolve_inside(root: str | os.PathLike, relative: str) -> "str | None":
    """The real path of ``root/relative`` if it lies inside ``root`` (after ``..`` and
    symlinks), else None: results files are data, and a path in one never reaches outside.

    >>> resolve_inside("/photos", "cats/tom.jpg")   # '/photos/cats/tom.jpg'
    >>> resolve_inside("/photos", "../etc/passwd")  # None
    """
    if not isinstance(relative, str) or not relative or "\x00" in relative or os.path.isabs(relative):
        return None
    real_root = os.path.realpath(root)
    real = os.path.realpath(os.path.join(real_root, relative))
    return real if _is_within(real, real_root) and real != real_root else None


def _reason_for(err: OSError) -> str:
    if isinstance(err, PermissionError):
        return _DENIED
    return _one_line(err.strerror or str(err) or type(err).__name__)


class ImageSource(param.Parameterized):
    """A folder of images: lists candidate image files by extension, without opening them.

    >>> paths, skipped = ImageSource(root="/data/photos", exclude=["/data/photos/.cache"]).find()
    """

    root = param.String(default="", doc="The folder chosen by the user ('~' is expanded).")
    recursive = param.Boolean(default=True, doc="Also look inside sub-folders.")
    include_hidden = param.Boolean(
        default=False,
        doc="Include hidden files and folders (any path component starting with '.').",
    )
    exclude = param.List(
        default=[],
        item_type=str,
        doc="Absolute folders to skip (compared by real path), e.g. the cache folder "
        "when it lies inside root.",
    )

    def _root(self) -> tuple[str, str, os.stat_result]:
        """(root as a usable path, its real path, its stat); one-line errors naming it."""
        given = self.root
        if not given:
            raise FileNotFoundError("no folder given: root is empty")
        path = os.path.abspath(os.path.expanduser(given))
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise FileNotFoundError(f"folder does not exist: {_show(given)}") from None
        except PermissionError:
            raise PermissionError(f"permission denied: {_show(given)}") from None
        except OSError as err:
            message = f"cannot open folder {_show(given)}: {_reason_for(err)}"
            raise FileNotFoundError(message) from None
        if not stat.S_ISDIR(st.st_mode):
            raise NotADirectoryError(f"not a folder: {_show(given)}")
        return path, os.path.realpath(path), st

    def find(self) -> tuple[list[str], list[Skipped]]:
        """Sorted relative '/'-paths of candidate image files, and what was skipped.

        Extensions are matched case-insensitively against :data:`IMAGE_EXTENSIONS`; other
        files are ignored silently. Symlinks are followed unless broken or pointing outside
        the root; each folder is walked once (loops end). Real folders are walked before
        symlinked ones, so a folder reachable both ways is listed under its real path.

        >>> paths, skipped = ImageSource(root="photos").find()
        """
        root_path, real_root, root_st = self._root()
        exts = IMAGE_EXTENSIONS
        hidden_ok = self.include_hidden
        recursive = self.recursive
        excluded_real: list[str] = []
        excluded_ids: set[tuple[int, int]] = set()
        for folder in self.exclude:
            real = os.path.realpath(os.path.abspath(os.path.expanduser(folder)))
            excluded_real.append(real)
            try:
                st = os.stat(real)
            except OSError:
                continue  # not there (yet): nothing to skip by identity
            excluded_ids.add((st.st_dev, st.st_ino))

        paths: list[str] = []
        skipped: list[Skipped] = []
        root_id = (root_st.st_dev, root_st.st_ino)
        if root_id in excluded_ids:
            return paths, skipped
        visited: set[tuple[int, int]] = {root_id}
        # folders to list: (filesystem path, relative prefix '' or 'a/b/', real path)
        stack: list[tuple[str, str, str]] = [(root_path, "", real_root)]
        # symlinked folders, walked after real ones, smallest relative path first:
        # (relative prefix, filesystem path, real path, (st_dev, st_ino), real parent)
        linked: list[tuple[str, str, str, tuple[int, int], str]] = []

        def excluded(real: str) -> bool:
            return any(_is_within(real, folder) for folder in excluded_real)

        def follow(entry: os.DirEntry[str], rel: str, name: str, real_parent: str) -> None:
            """Handle one symlink: report it, list it, or queue its folder."""
            try:
                st = entry.stat()  # follows the link
            except PermissionError:
                skipped.append(Skipped(rel, _DENIED))
                return
            except OSError:  # dangling, ELOOP, ENOTDIR ...
                skipped.append(Skipped(rel, _BROKEN))
                return
            if stat.S_ISDIR(st.st_mode):
                if not recursive:
                    return
                real = os.path.realpath(entry.path)
                if not _is_within(real, real_root):
                    skipped.append(Skipped(rel + "/", _OUTSIDE))
                elif not excluded(real):
                    key = (st.st_dev, st.st_ino)
                    heapq.heappush(linked, (rel + "/", entry.path, real, key, real_parent))
                return
            dot = name.rfind(".")
            if dot <= 0 or name[dot:].lower() not in exts:
                return  # not an image name: ignored silently, like any other file
            real = os.path.realpath(entry.path)
            if not _is_within(real, real_root):
                skipped.append(Skipped(rel, _OUTSIDE))
            elif not stat.S_ISREG(st.st_mode):
                skipped.append(Skipped(rel, "not a regular file"))
            elif not excluded(real):
                paths.append(rel)

        def list_folder(folder: str, prefix: str, real_folder: str) -> None:
            """One folder: files are listed, sub-folders stacked, symlinks followed."""
            with os.scandir(folder) as entries:
                for entry in entries:  # d_type answers is_symlink/is_dir/is_file: no stat
                    name = entry.name
                    if name[0] == "." and not hidden_ok:
                        continue
                    rel = prefix + name
                    if entry.is_symlink():
                        follow(entry, rel, name, real_folder)
                    elif entry.is_dir(follow_symlinks=False):
                        if recursive:
                            enter(entry, rel, real_folder + os.sep + name)
                    else:
                        dot = name.rfind(".")
                        if dot > 0 and name[dot:].lower() in exts:
                            if entry.is_file(follow_symlinks=False):
                                paths.append(rel)
                            else:
                                skipped.append(Skipped(rel, "not a regular file"))

        def enter(entry: os.DirEntry[str], rel: str, real: str) -> None:
            """Stack a real sub-folder unless seen (a bind-mount loop) or excluded."""
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError as err:
                skipped.append(Skipped(rel + "/", _reason_for(err)))
                return
            key = (st.st_dev, st.st_ino)
            if key not in visited and key not in excluded_ids:
                visited.add(key)
                stack.append((entry.path, rel + "/", real))

        while True:
            while stack:
                folder, prefix, real_folder = stack.pop()
                try:
                    list_folder(folder, prefix, real_folder)
                except OSError as err:
                    if not prefix:  # the root itself: nothing can be listed
                        message = f"cannot list folder {_show(self.root)}: {_reason_for(err)}"
                        raise type(err)(message) from None
                    skipped.append(Skipped(prefix, _reason_for(err)))
            if not linked:
                break
            prefix, folder, real, key, real_parent = heapq.heappop(linked)
            if key in visited:
                if _is_within(real_parent, real):  # the link points at one of its ancestors
                    skipped.append(Skipped(prefix, "symlink loop"))
                else:
                    skipped.append(Skipped(prefix, "symlink to a folder already scanned"))
            elif key not in excluded_ids:
                visited.add(key)
                stack.append((folder, prefix, real))

        paths.sort()
        skipped.sort()
        return paths, skipped

    def scan(self) -> "DocList[ImageRecord]":
        """:meth:`find` as a ``DocList[ImageRecord]`` with only ``path`` filled in.

        >>> docs = ImageSource(root="photos").scan(); docs[0].path
        """
        from docarray import DocList

        from ..records import ImageRecord

        paths, _ = self.find()
        return DocList[ImageRecord]([ImageRecord(path=path) for path in paths])
