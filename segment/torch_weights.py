"""Read a PyTorch `.pth` weights file into NumPy arrays, without PyTorch and without running code.

    weights = read_torch_weights("efficientnet-lite0-57934424.pth")   # {name: float32 array}

A `.pth` file is a pickle, and unpickling may call any function the file names: a hostile file
runs code under `torch.load` (without `weights_only=True`) or `pickle.load`. It may also lie
about its geometry (a tensor reaching past its storage, a payload of terabytes). This reader
trusts nothing in the file:

- Its unpickler runs only the opcodes a state dict needs. Names resolve to factories of its own
  (`collections.OrderedDict`, `torch._utils._rebuild_tensor_v2` and storage types such as
  `torch.FloatStorage`); every other name is refused before anything runs. BUILD (which sets
  attributes) is refused except on a state dict's own `_metadata`, which is dropped. Instance
  opcodes and extension codes are refused, and so is a persistent id that is not a storage's.
- Every size is checked before it is read, decompressed or allocated: the file, each storage's
  declared bytes (their sum at most `max_bytes`, 1 GiB unless raised), each zip member against
  its storage's declared bytes, and each tensor's offset, sizes and strides against its storage.
- Storages are read as little-endian; a file that says it is big-endian is refused.
- Whatever goes wrong ends in one `ModelLoadError` that names the file and the reason.

Both layouts `torch.save` writes are read: the zip archive (PyTorch >= 1.6) and the legacy
stream of pickles (a magic number, the protocol version, system information, the state dict,
the storage keys, then each storage's element count and raw bytes).
"""

import collections
import io
import math
import pickle
import pickletools
import struct
import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .errors import ModelLoadError

__all__ = ["MAX_BYTES", "read_torch_weights"]

MAX_BYTES = 1 << 30  # default cap on a file and on its tensors' bytes: far above any encoder's
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch.serialization.MAGIC_NUMBER
_LEGACY_PROTOCOL = 1001  # torch.serialization.PROTOCOL_VERSION
_STORAGE_DTYPES = {name: np.dtype(code) for name, code in [
    ("DoubleStorage", "<f8"), ("FloatStorage", "<f4"), ("HalfStorage", "<f2"),
    ("LongStorage", "<i8"), ("IntStorage", "<i4"), ("ShortStorage", "<i2"),
    ("CharStorage", "i1"), ("ByteStorage", "u1"), ("BoolStorage", "?")]}
# The opcodes a state dict is written with (protocols 0 to 5), apart from BUILD (see `_build`).
_ALLOWED_OPCODES = {
    "PROTO", "FRAME", "STOP", "MARK", "POP", "POP_MARK", "DUP", "GLOBAL", "STACK_GLOBAL",
    "PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE", "GET", "BINGET", "LONG_BINGET",
    "NONE", "NEWTRUE", "NEWFALSE", "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1",
    "LONG4", "FLOAT", "BINFLOAT", "STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE",
    "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8",
    "EMPTY_TUPLE", "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3", "EMPTY_LIST", "LIST", "APPEND",
    "APPENDS", "EMPTY_DICT", "DICT", "SETITEM", "SETITEMS", "REDUCE", "PERSID", "BINPERSID"}


def read_torch_weights(path, *, max_bytes=MAX_BYTES):
    """The tensors of a PyTorch state dict file, as NumPy arrays, read without running its code.

    Args:
        path: A `.pth` / `.pt` file written by `torch.save(model.state_dict(), path)`.
        max_bytes: Cap on the file's size and on the bytes its tensors declare, checked before
            reading, decompressing or allocating. Defaults to `MAX_BYTES` (1 GiB).

    Returns:
        dict of parameter name -> numpy array (the file's dtype and shape, C order, writable).

    Raises:
        ModelLoadError: the file is missing, truncated, not a PyTorch state dict, holds no
            tensor, declares tensors outside their storages or over `max_bytes`, or names a
            Python object other than a tensor or a dict (a file that would run code); one line
            naming the file and the reason.

    Example:
        >>> import torch
        >>> torch.save({"conv.weight": torch.ones(2, 3)}, tmp / "tiny.pth")
        >>> read_torch_weights(tmp / "tiny.pth")["conv.weight"].shape
        (2, 3)
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise _Refused(f"it is {size:,} bytes, over the cap of {max_bytes:,} "
                           f"(pass max_bytes to raise it)")
        data = path.read_bytes()
    except OSError as error:
        raise ModelLoadError(f"weights file '{path}' cannot be read: {error}") from None
    except _Refused as error:
        raise ModelLoadError(f"weights file '{path}': {error}") from None
    budget = _Budget(max_bytes)
    try:
        read = _read_zip if zipfile.is_zipfile(io.BytesIO(data)) else _read_legacy
        return _to_arrays(read(data, budget), budget)
    except _Refused as error:
        raise ModelLoadError(f"weights file '{path}': {error}") from None
    except Exception as error:  # noqa: BLE001 - any other failure on untrusted bytes
        message = " ".join(f"{type(error).__name__}: {error}".split())
        raise ModelLoadError(f"weights file '{path}' is not a readable PyTorch state dict "
                             f"(truncated or foreign): {message}") from None


class _Refused(Exception):
    """A check failed; `read_torch_weights` turns it into a ModelLoadError naming the file."""


class _Budget:
    """Bytes the file may still declare (storages) and make (arrays), out of `max_bytes`."""

    def __init__(self, max_bytes):
        self.max_bytes, self.declared, self.made = max_bytes, 0, 0

    def declare(self, what, num_bytes):
        self.declared += num_bytes
        self._check(what, num_bytes, self.declared)

    def make(self, what, num_bytes):
        self.made += num_bytes
        self._check(what, num_bytes, self.made)

    def _check(self, what, num_bytes, total):
        if total > self.max_bytes:
            raise _Refused(f"{what} would take {num_bytes:,} bytes, over the cap of "
                           f"{self.max_bytes:,} in all (pass max_bytes to raise it)")


class _Storage:
    """A typed storage the pickle names; its bytes arrive later (legacy) or from the zip."""

    def __init__(self, dtype, key, num_elements):
        self.dtype, self.key, self.num_elements = dtype, key, num_elements
        self.array = None  # 1-D numpy array once the bytes are read

    @property
    def num_bytes(self):
        return self.num_elements * self.dtype.itemsize


class _StorageType(NamedTuple):
    """Stands in for `torch.FloatStorage` and the like (only their names are used)."""

    name: str


class _TensorRecord(NamedTuple):
    """What `torch._utils._rebuild_tensor_v2` would build: a strided view of a storage."""

    storage: _Storage
    offset: int
    size: tuple
    stride: tuple


def _rebuild_tensor(storage, offset, size, stride, *_):
    """The factory `torch._utils._rebuild_tensor_v2` resolves to: checks its arguments' types."""
    if not isinstance(storage, _Storage):
        raise _Refused(f"a tensor's storage is a {type(storage).__name__}, not a storage")
    if not (_is_int(offset) and isinstance(size, tuple) and isinstance(stride, tuple)
            and len(size) == len(stride) and all(map(_is_int, size + stride))):
        raise _Refused(f"a tensor's geometry is malformed (offset {offset!r}, size {size!r}, "
                       f"stride {stride!r})")
    return _TensorRecord(storage, offset, size, stride)


def _new_ordered_dict(*args):
    """The factory `collections.OrderedDict` resolves to."""
    return collections.OrderedDict(*args)


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _refuse_opcode(name):
    def refuse(unpickler):
        raise _Refused(f"refused: pickle opcode {name}, which a state dict of tensors never "
                       f"needs")
    return refuse


class _RestrictedUnpickler(pickle._Unpickler):
    """Runs only `_ALLOWED_OPCODES` (and BUILD on a state dict's `_metadata`) and resolves
    only the names a state dict needs, to the factories above. The pure-Python unpickler, so
    that each opcode passes through this class; state dicts' pickles are small."""

    dispatch = {code: (pickle._Unpickler.dispatch[code] if opcode.name in _ALLOWED_OPCODES
                       else _refuse_opcode(opcode.name))
                for opcode in pickletools.opcodes
                for code in [opcode.code.encode("latin-1")[0]]}

    def __init__(self, file, storages, budget, legacy):
        super().__init__(file)
        self.storages, self.budget, self.legacy = storages, budget, legacy

    def _build(self):
        """BUILD: allowed only to set a state dict's `_metadata`, which is dropped."""
        state = self.stack.pop()
        target = self.stack[-1]
        if not (type(target) is collections.OrderedDict and isinstance(state, dict)
                and set(state) <= {"_metadata"}):
            raise _Refused(f"refused: pickle opcode BUILD on a {type(target).__name__}, "
                           f"which would set attributes of it")

    dispatch[pickle.BUILD[0]] = _build

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return _new_ordered_dict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        if (module == "torch" and name.endswith("Storage")) or (
                module == "torch._utils" and name.startswith("_rebuild_")):
            raise _Refused(f"unsupported: it names '{module}.{name}', which this reader does "
                           f"not read (plain tensors of {', '.join(_STORAGE_DTYPES)} only)")
        raise _Refused(f"refused: it names '{module}.{name}', which a state dict of tensors "
                       f"never needs (loading it would run that code)")

    def persistent_load(self, pid):
        """('storage', storage type, key, location, element count[, view]): a _Storage."""
        if not (isinstance(pid, tuple) and len(pid) == (6 if self.legacy else 5)
                and pid[0] == "storage" and isinstance(pid[1], _StorageType)
                and isinstance(pid[2], str) and isinstance(pid[3], str) and _is_int(pid[4])
                and pid[4] >= 0):
            raise _Refused(f"refused: persistent id {_short(pid)} is not a storage's")
        if self.legacy and pid[5] is not None:
            raise _Refused(f"unsupported: storage {pid[2]!r} is a view of another storage")
        _, storage_type, key, _location, num_elements = pid[:5]
        if key not in self.storages:
            storage = _Storage(_STORAGE_DTYPES[storage_type.name], key, num_elements)
            self.budget.declare(f"storage {key!r}", storage.num_bytes)
            self.storages[key] = storage
        elif self.storages[key].num_elements != num_elements:
            raise _Refused(f"storage {key!r} is declared with two element counts")
        return self.storages[key]


def _short(value, limit=80):
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _unpickle(stream, storages, budget, legacy):
    return _RestrictedUnpickler(stream, storages, budget, legacy).load()


def _read_legacy(data, budget):
    """The legacy stream: magic, protocol, system info, state dict, storage keys, storages."""
    stream, storages = io.BytesIO(data), {}
    magic, protocol, system = (_unpickle(stream, storages, budget, True) for _ in range(3))
    if magic != _LEGACY_MAGIC or protocol != _LEGACY_PROTOCOL or not isinstance(system, dict):
        raise _Refused("not a PyTorch file: no PyTorch magic number and protocol at its start")
    if system.get("little_endian") is not True:
        raise _Refused("unsupported: it was written on a big-endian machine")
    state = _unpickle(stream, storages, budget, True)
    keys = _unpickle(stream, storages, budget, True)
    if not (isinstance(keys, list) and sorted(keys) == sorted(storages)):
        raise _Refused(f"its list of storages ({_short(keys)}) is not the storages its tensors "
                       f"name")
    for key in keys:
        storage = storages[key]
        (count,) = struct.unpack("<q", stream.read(8))
        if count != storage.num_elements:
            raise _Refused(f"storage {key!r} holds {count:,} elements; its header declares "
                           f"{storage.num_elements:,}")
        raw = stream.read(storage.num_bytes)
        if len(raw) != storage.num_bytes:
            raise _Refused(f"storage {key!r} is cut short: {len(raw):,} of "
                           f"{storage.num_bytes:,} bytes")
        storage.array = np.frombuffer(raw, storage.dtype)
    return state


def _read_zip(data, budget):
    """The zip archive: `<root>/data.pkl` plus one member per storage, `<root>/data/<key>`."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        pickles = [name for name in archive.namelist() if name.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise _Refused(f"its zip archive holds {len(pickles)} data.pkl files, not one")
        root = pickles[0][: -len("data.pkl")]
        if f"{root}byteorder" in archive.namelist():
            order = _member(archive, f"{root}byteorder", budget)
            if order != b"little":
                raise _Refused(f"unsupported: its byte order is {order!r}, not little-endian")
        storages = {}
        pickled = _member(archive, pickles[0], budget)
        state = _unpickle(io.BytesIO(pickled), storages, budget, False)
        for key, storage in storages.items():
            raw = _member(archive, f"{root}data/{key}", budget, exact=storage.num_bytes)
            storage.array = np.frombuffer(raw, storage.dtype)
    return state


def _member(archive, name, budget, *, exact=None):
    """A zip member's bytes. Its header's size is checked first (equal to `exact` when given,
    else within the cap), then no more than that size plus one byte is decompressed."""
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise _Refused(f"its zip archive has no member '{name}'") from None
    if exact is not None and info.file_size != exact:
        raise _Refused(f"zip member '{name}' holds {info.file_size:,} bytes; its storage "
                       f"declares {exact:,}")
    if info.file_size > budget.max_bytes:
        raise _Refused(f"zip member '{name}' declares {info.file_size:,} bytes, over the cap "
                       f"of {budget.max_bytes:,} (pass max_bytes to raise it)")
    with archive.open(info) as member:
        raw = member.read(info.file_size + 1)
    if len(raw) != info.file_size:
        raise _Refused(f"zip member '{name}' decompresses to {len(raw):,} bytes, not the "
                       f"{info.file_size:,} its header declares")
    return raw


def _to_arrays(state, budget):
    """{name: C-order copy of each tensor}, after checking each against its storage."""
    if not isinstance(state, dict):
        raise _Refused(f"it holds a {type(state).__name__}, not a state dict")
    if not state:
        raise _Refused("its state dict holds no tensor")
    arrays = {}
    for name, tensor in state.items():
        if not isinstance(name, str) or not isinstance(tensor, _TensorRecord):
            raise _Refused(f"entry {_short(name)} of its state dict is a "
                           f"{type(tensor).__name__}, not a tensor")
        arrays[name] = _tensor_array(name, tensor, budget)
    return arrays


def _tensor_array(name, tensor, budget):
    """The tensor's elements as a new array, once its view is proven inside its storage."""
    storage, offset, size, stride = tensor
    if storage.array is None:
        raise _Refused(f"tensor '{name}': storage {storage.key!r} has no bytes in the file")
    if offset < 0 or any(value < 0 for value in size + stride):
        raise _Refused(f"tensor '{name}': negative offset, size or stride (offset {offset}, "
                       f"size {size}, stride {stride})")
    elements = math.prod(size)
    reach = sum((length - 1) * step for length, step in zip(size, stride, strict=True))
    last = offset + reach if elements else offset - 1  # the last element read, if any
    if offset > storage.num_elements or last >= storage.num_elements:
        raise _Refused(f"tensor '{name}' reaches outside its storage {storage.key!r} of "
                       f"{storage.num_elements:,} elements (offset {offset}, size {size}, "
                       f"stride {stride})")
    budget.make(f"tensor '{name}' of size {size}", elements * storage.dtype.itemsize)
    itemsize = storage.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(storage.array[offset:], shape=size,
                                           strides=[step * itemsize for step in stride])
    return np.array(view, dtype=storage.dtype.newbyteorder("="), order="C")
