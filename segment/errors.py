"""Error types of the library.

Every error the library raises on purpose is a `SegmentError`. Each subclass also inherits the
built-in exception it refines, so `except OSError` and `except segment.ImageReadError` both work.
Messages name the file and say what was expected and what was found; `counted` words their
counts.
"""

__all__ = ["SegmentError", "ImageReadError", "PairingError", "ModelLoadError", "RunFolderError",
           "counted"]


def counted(count, noun, plural=None):
    """`count` and `noun` for a message, the noun plural (`plural`, else an "s" added) unless
    the count is 1.

    Example:
        >>> counted(1, "image"), counted(20, "unreadable file"), counted(2, "entry", "entries")
        ('1 image', '20 unreadable files', '2 entries')
    """
    return f"{count} {noun if count == 1 else plural or noun + 's'}"


class SegmentError(Exception):
    """Base class of every error raised by `segment`."""


class ImageReadError(SegmentError, OSError):
    """An image or mask file cannot be read: missing, empty, truncated, not an image, too big.

    Attributes:
        path: the file that could not be read.
    """

    def __init__(self, path, problem):
        super().__init__(f"'{path}' {problem}")
        self.path = path

    def __reduce__(self):  # keep it picklable despite the two-argument constructor
        return type(self), (self.path, str(self).split("' ", 1)[1])


class PairingError(SegmentError, ValueError):
    """Images and masks cannot be paired or split: no pairs, duplicate ids, unknown ids."""


class ModelLoadError(SegmentError, ValueError):
    """A file or folder is not a model this library can load (or is refused by safe mode)."""


class RunFolderError(SegmentError, FileExistsError):
    """A run folder already holds a finished result that would be overwritten."""
