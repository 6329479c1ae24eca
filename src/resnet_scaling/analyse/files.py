"""The checkpoint files named by the inputs of one analysis: glob patterns expanded, each
folder searched once (a symlink loop ends), each file read once however many paths lead to it."""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
from pathlib import Path

from .maps import AnalyseError

#: The most files the inputs of one analysis may name or match (after duplicates are removed);
#: past it the command stops and asks for narrower patterns.
MAX_FILES = 10_000
#: The most directories one glob pattern may search (each entered once, whatever path leads to it).
MAX_DIRECTORIES = 100_000
_MAGIC = re.compile(r"[*?[]")


def _identity(path: str) -> tuple:
    """What makes two paths the same file: the device and inode it lives at (one file reached
    through a symlinked folder, a hard link or two patterns), or where a file system gives no
    inode, the SHA-256 of its content."""
    try:
        st = os.stat(path)
    except OSError:
        return ("path", os.path.abspath(path))
    if st.st_ino:
        return ("inode", st.st_dev, st.st_ino)
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return ("content", st.st_size, digest.hexdigest())


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()  # follows symlinks, as glob does; loops end in _Search.visit()
    except OSError:
        return False


class _Search:
    """One glob pattern's search from its fixed root: the pattern's remaining ``parts``, the
    files found and the (folder, part) pairs already visited."""

    def __init__(self, pattern: str, parts: list[str]):
        self.pattern, self.parts = pattern, parts
        self.found: list[str] = []
        self.seen: set[tuple] = set()
        self.directories = 0

    def listing(self, folder: str) -> list[os.DirEntry]:
        self.directories += 1
        if self.directories > MAX_DIRECTORIES:
            raise AnalyseError(f"{self.pattern}: searches more than {MAX_DIRECTORIES} folders; name the checkpoints "
                               "with a narrower pattern")
        try:
            with os.scandir(folder or ".") as entries:
                return sorted(entries, key=lambda e: e.name)
        except OSError:
            return []

    def add(self, path: str) -> None:
        self.found.append(path)
        if len(self.found) > MAX_FILES:
            raise AnalyseError(f"{self.pattern}: matches more than {MAX_FILES} files (the most one analysis reads); "
                               "name the checkpoints with a narrower pattern")

    def visit(self, folder: str, i: int) -> None:
        try:
            st = os.stat(folder or ".")
        except OSError:
            return
        key = (st.st_dev, st.st_ino, i) if st.st_ino else (os.path.realpath(folder or "."), i)
        if key in self.seen:
            return
        self.seen.add(key)
        part = self.parts[i]
        if part == "**":
            self.any_depth(folder, i)
        elif not _MAGIC.search(part):
            self.literal(folder, i)
        else:
            self.matching(folder, i)

    def any_depth(self, folder: str, i: int) -> None:
        """``**``: this folder and every folder below it (not those starting with a dot)."""
        if i == len(self.parts) - 1:  # 'x/**' matches the files at any depth below x
            for entry in self.listing(folder):
                if not entry.name.startswith("."):
                    if _is_dir(entry):
                        self.visit(os.path.join(folder, entry.name), i)
                    else:
                        self.add(os.path.join(folder, entry.name))
            return
        self.visit(folder, i + 1)
        for entry in self.listing(folder):
            if not entry.name.startswith(".") and _is_dir(entry):
                self.visit(os.path.join(folder, entry.name), i)

    def literal(self, folder: str, i: int) -> None:
        """A part without wildcards: the one name, no listing."""
        path = os.path.join(folder, self.parts[i])
        if i == len(self.parts) - 1:
            if os.path.isfile(path):
                self.add(path)
        elif os.path.isdir(path):
            self.visit(path, i + 1)

    def matching(self, folder: str, i: int) -> None:
        """A part with wildcards: the names of the folder it matches."""
        part, last = self.parts[i], i == len(self.parts) - 1
        for entry in self.listing(folder):
            if entry.name.startswith(".") and not part.startswith("."):
                continue
            if not fnmatch.fnmatchcase(entry.name, part):
                continue
            if last:
                if os.path.isfile(os.path.join(folder, entry.name)):
                    self.add(os.path.join(folder, entry.name))
            elif _is_dir(entry):
                self.visit(os.path.join(folder, entry.name), i + 1)


def glob_files(pattern: str) -> list[str]:
    """The files a glob pattern matches, as :func:`glob.glob` with ``recursive=True`` finds them
    (``*``, ``?``, ``[...]`` within a name, ``**`` for any number of folders, names starting with
    a dot only when the pattern's part does), sorted, except that each folder is searched once
    for each part of the pattern whatever path leads to it: a symlink loop (a folder linking to
    itself or to a parent) ends instead of recursing forever. Stops with an error past
    :data:`MAX_FILES` files or :data:`MAX_DIRECTORIES` folders."""
    absolute = pattern.startswith(os.sep)
    parts = [p for p in pattern.split(os.sep) if p not in ("", ".")]
    root_parts = []
    while parts and len(parts) > 1 and not _MAGIC.search(parts[0]) and parts[0] != "**":
        root_parts.append(parts.pop(0))
    root = os.path.join(os.sep if absolute else "", *root_parts) if (absolute or root_parts) else ""
    if not parts:
        return [root] if os.path.isfile(root) else []
    search = _Search(pattern, parts)
    search.visit(root, 0)
    return sorted(set(search.found))


def expand_inputs(patterns) -> list[Path]:
    """Files named or matched by glob patterns (:func:`glob_files`), in order, each file once.

    Two paths to one file (a symlinked folder, a hard link, two patterns matching the same
    files) are one file, by its identity (:func:`_identity`), not by the text of the path: the
    first path found stands for it. A pattern matching nothing is an error, as are more than
    :data:`MAX_FILES` files in all."""
    out: list[Path] = []
    identities: set[tuple] = set()
    for pattern in patterns:
        pattern = str(pattern)
        hits = [pattern] if Path(pattern).is_file() else glob_files(pattern)
        if not hits:
            raise AnalyseError(f"{pattern}: no such file, and no file matches it as a glob pattern")
        for hit in hits:
            identity = _identity(hit)
            if identity not in identities:
                identities.add(identity)
                out.append(Path(hit))
        if len(out) > MAX_FILES:
            raise AnalyseError(f"{pattern}: the inputs name more than {MAX_FILES} files (the most one analysis "
                               "reads); analyse fewer at a time")
    return out
