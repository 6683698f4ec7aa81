"""Read a PyTorch `.pth` weights file into NumPy arrays, without PyTorch and without running code.

    weights = read_torch_weights("efficientnet-lite0-57934424.pth")   # {name: float32 array}

A `.pth` file is a pickle, and unpickling may call any function the file names: a hostile file
runs code under `torch.load` (without `weights_only=True`) or `pickle.load`. This reader's
unpickler resolves only the names a state dict needs (`collections.OrderedDict`,
`torch._utils._rebuild_tensor_v2` and the typed storages such as `torch.FloatStorage`) to
harmless stand-ins of its own, and refuses every other name with `ModelLoadError` before
anything runs. Both layouts `torch.save` writes are read: the zip archive (PyTorch >= 1.6) and
the legacy stream of pickles (a magic number, the protocol version, system information, the
state dict, the storage keys, then each storage's raw bytes).
"""

import collections
import io
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np

from .errors import ModelLoadError

__all__ = ["read_torch_weights"]

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch.serialization.MAGIC_NUMBER
_STORAGE_DTYPES = {"DoubleStorage": np.float64, "FloatStorage": np.float32,
                   "HalfStorage": np.float16, "LongStorage": np.int64, "IntStorage": np.int32,
                   "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8,
                   "BoolStorage": np.bool_}


def read_torch_weights(path):
    """The tensors of a PyTorch state dict file, as NumPy arrays, read without running its code.

    Args:
        path: A `.pth` / `.pt` file written by `torch.save(model.state_dict(), path)`.

    Returns:
        dict of parameter name -> numpy array (the file's dtype and shape, C order).

    Raises:
        ModelLoadError: the file is missing, truncated, not a PyTorch state dict, or names a
            Python object other than a tensor or a dict (a file that would run code); the
            message names the file and the refused name.

    Example:
        >>> import torch
        >>> torch.save({"conv.weight": torch.ones(2, 3)}, tmp / "tiny.pth")
        >>> read_torch_weights(tmp / "tiny.pth")["conv.weight"].shape
        (2, 3)
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ModelLoadError(f"weights file '{path}' cannot be read: {error}") from None
    try:
        read = _read_zip if zipfile.is_zipfile(io.BytesIO(data)) else _read_legacy
        state = read(data)
    except ModelLoadError as error:
        raise ModelLoadError(f"weights file '{path}': {error}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, KeyError, IndexError, TypeError,
            struct.error, zipfile.BadZipFile) as error:
        raise ModelLoadError(f"weights file '{path}' is not a readable PyTorch state dict "
                             f"(truncated or foreign): {type(error).__name__}: {error}") from None
    if not isinstance(state, dict) or not all(isinstance(value, _Tensor)
                                              for value in state.values()):
        raise ModelLoadError(f"weights file '{path}' holds no state dict of tensors")
    return {name: tensor.to_numpy() for name, tensor in state.items()}


class _Storage:
    """A typed storage named in the file; its bytes arrive later (legacy) or from the zip."""

    def __init__(self, dtype, key, num_elements):
        self.dtype, self.key, self.num_elements = np.dtype(dtype), key, num_elements
        self.array = None  # 1-D numpy array once the bytes are read


class _Tensor:
    """What `torch._utils._rebuild_tensor_v2` would build: a strided view of a storage."""

    def __init__(self, storage, offset, size, stride, *_):
        self.storage, self.offset = storage, offset
        self.size, self.stride = tuple(size), tuple(stride)

    def to_numpy(self):
        flat = self.storage.array
        item = flat.itemsize
        view = np.lib.stride_tricks.as_strided(
            flat[self.offset:], shape=self.size, strides=[step * item for step in self.stride])
        return np.array(view, order="C")  # a copy: C order, writable, apart from the storage


class _StorageType:
    """Stands in for `torch.FloatStorage` and the like (only their names are used)."""

    def __init__(self, name):
        self.dtype = _STORAGE_DTYPES[name]


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves the few names a state dict needs to the stand-ins above; refuses all others."""

    def __init__(self, file, storages):
        super().__init__(file)
        self.storages = storages  # key -> _Storage, filled as the pickle names them

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _Tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise ModelLoadError(f"refused: it names '{module}.{name}', which a state dict of "
                             f"tensors never needs (loading it would run that code)")

    def persistent_load(self, pid):
        kind, storage_type, key, _location, num_elements, *_ = pid
        if kind != "storage" or not isinstance(storage_type, _StorageType):
            raise ModelLoadError(f"refused: unexpected persistent id {pid!r}")
        if key not in self.storages:
            self.storages[key] = _Storage(storage_type.dtype, str(key), int(num_elements))
        return self.storages[key]


def _read_legacy(data):
    """The legacy stream: magic, protocol, system info, state dict, storage keys, storages."""
    stream, storages = io.BytesIO(data), {}
    header = [_RestrictedUnpickler(stream, storages).load() for _ in range(3)]
    if header[0] != _LEGACY_MAGIC:
        raise ValueError("no PyTorch magic number at its start")
    state = _RestrictedUnpickler(stream, storages).load()
    keys = _RestrictedUnpickler(stream, storages).load()
    for key in keys:
        storage = storages[key]
        (count,) = struct.unpack("<q", stream.read(8))
        raw = stream.read(count * storage.dtype.itemsize)
        if count != storage.num_elements or len(raw) != count * storage.dtype.itemsize:
            raise ValueError(f"storage {key} is cut short")
        storage.array = np.frombuffer(raw, storage.dtype)
    return state


def _read_zip(data):
    """The zip archive: `<name>/data.pkl` plus one member per storage, `<name>/data/<key>`."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = archive.namelist()
        (pickle_name,) = [name for name in names if name.endswith("/data.pkl")]
        root = pickle_name[: -len("data.pkl")]
        storages = {}
        state = _RestrictedUnpickler(io.BytesIO(archive.read(pickle_name)), storages).load()
        for key, storage in storages.items():
            raw = archive.read(f"{root}data/{key}")
            storage.array = np.frombuffer(raw, storage.dtype)[: storage.num_elements]
    return state
