"""Atomic file writes: a crash or a full disk never leaves a half-written file in place; and a
file's SHA-256, by which a run records the files it used.

Everything the library writes (models, masks, manifests, reports) goes through `atomic_path`:
the content is written to a temporary name in the same folder, then renamed over the target,
which on POSIX and Windows replaces it in one step.
"""

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["atomic_path", "file_sha256", "json_text", "printable", "replace_path",
           "save_figure_atomic", "write_json_atomic", "write_text_atomic"]


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; rename it to `path` only if the block succeeds.

    The temporary name keeps `path`'s suffix (Keras picks the format from it). If the block
    raises, the temporary file is removed and `path` is left exactly as it was.

    Example:
        >>> with atomic_path(tmp / "summary.txt") as partial:
        ...     _ = partial.write_text("done")
        >>> (tmp / "summary.txt").read_text()
        'done'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}",
                                    dir=path.parent)
    os.close(handle)
    tmp = Path(name)
    tmp.unlink()  # writers such as Keras and PIL create the file themselves
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def printable(text):
    """`text` with any undecodable file-name bytes shown as U+FFFD, for pages and figures.

    Example:
        >>> name = b"ISIC_\\xff".decode("utf-8", "surrogateescape")  # as Python reads it
        >>> printable(name) == "ISIC_\\ufffd"
        True
    """
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def replace_path(source, target):
    """Move the file or folder `source` to `target`, replacing what is there.

    A file replaces a file in one step. A folder replacing a folder takes two renames (the
    old one aside, the new one in), then the old one is removed: an interruption between them
    leaves the old folder under a temporary name beside `target`, never a mix of the two.
    """
    source, target = Path(source), Path(target)
    if not (source.is_dir() and target.is_dir()):
        os.replace(source, target)
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
    os.replace(target, aside / target.name)
    os.replace(source, target)
    shutil.rmtree(aside, ignore_errors=True)


def write_text_atomic(path, text):
    """Write `text` as UTF-8 to `path` atomically.

    Non-UTF-8 file names (str with surrogate escapes, as Python decodes them on POSIX) are
    written back as their original bytes rather than failing.
    """
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8", errors="surrogateescape")


def write_json_atomic(path, data):
    """Write `data` as indented JSON to `path` atomically; NaN is written as null."""
    write_text_atomic(path, json_text(data, indent=2) + "\n")


def json_text(data, indent=None):
    """`data` as JSON text with NaN written as null (valid JSON) and other objects as str."""
    return json.dumps(_nan_to_none(data), indent=indent, default=str, allow_nan=False,
                      ensure_ascii=False)


def save_figure_atomic(figure, path, dpi=100):
    """Save a matplotlib Figure as PNG to `path` atomically."""
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=dpi)


def _nan_to_none(value):
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {key: _nan_to_none(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_nan_to_none(item) for item in value]
    return value


def file_sha256(path):
    """Hex SHA-256 of a model file (of a SavedModel folder: of its files' names and bytes)."""
    path, digest = Path(path), hashlib.sha256()
    files = sorted(item for item in path.rglob("*") if item.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode())
        with open(file, "rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
