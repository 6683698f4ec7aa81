"""Atomic file writes: a crash or a full disk never leaves a half-written file in place.

Everything the library writes (models, masks, manifests, reports) goes through `atomic_path`:
the content is written to a temporary name in the same folder, then renamed over the target,
which on POSIX and Windows replaces it in one step.
"""

import contextlib
import json
import os
import tempfile
from pathlib import Path

__all__ = ["atomic_path", "save_figure_atomic", "write_json_atomic", "write_text_atomic"]


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


def write_text_atomic(path, text):
    """Write `text` as UTF-8 to `path` atomically.

    Non-UTF-8 file names (str with surrogate escapes, as Python decodes them on POSIX) are
    written back as their original bytes rather than failing.
    """
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8", errors="surrogateescape")


def write_json_atomic(path, data):
    """Write `data` as indented JSON to `path` atomically; NaN is written as null."""
    write_text_atomic(path, json.dumps(_nan_to_none(data), indent=2, default=str) + "\n")


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
