"""Write PyTorch `.pth` state dicts without PyTorch, genuine or crafted, for the reader's tests.

    tensors = {"conv.weight": stored(np.ones((2, 3), np.float32))}
    path.write_bytes(pth_bytes(tensors, layout="zip"))      # or layout="legacy"

Both layouts are what `torch.save` writes (test_torch_weights.py checks that `torch.load` reads
these files back where PyTorch is installed), so the hostile-file tests run on every install.
Each `Stored` field can be set to what an attacker would write: an offset or a stride outside
the storage, an element count the bytes do not hold, another storage type.
"""

import collections
import dataclasses
import io
import pickle
import struct
import zipfile

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
STORAGE_TYPES = {"float32": "FloatStorage", "float64": "DoubleStorage", "float16": "HalfStorage",
                 "int64": "LongStorage", "int32": "IntStorage", "uint8": "ByteStorage",
                 "bool": "BoolStorage"}


@dataclasses.dataclass
class Stored:
    """One tensor as the file records it: a 1-D storage and a strided view of it."""

    data: np.ndarray  # the storage's elements (little-endian bytes are written)
    size: tuple
    stride: tuple
    offset: int = 0
    num_elements: int = None  # the element count the header declares (default: len(data))
    storage_type: str = None  # default: from data's dtype
    key: str = None  # the storage's key (default: its position)


def stored(array):
    """A C-contiguous array as `torch.save` stores it (storage = its elements)."""
    array = np.ascontiguousarray(array)
    return Stored(array.reshape(-1), array.shape,
                  tuple(step // array.itemsize for step in array.strides))


class Name:
    """A module-level name the pickle refers to (GLOBAL), e.g. Name("torch", "FloatStorage")."""

    def __init__(self, module, name):
        self.module, self.name = module, name

    def __call__(self, *args):  # only ever pickled; callable so that pickle accepts it in REDUCE
        raise TypeError("a Name is only pickled")


class Call:
    """`function(*args)` in the pickle (REDUCE)."""

    def __init__(self, function, *args):
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args


class _Storage:
    def __init__(self, item, index):
        self.item, self.key = item, item.key if item.key is not None else str(index)


class _Pickler(pickle._Pickler):
    """Protocol 2, writes `Name` as GLOBAL and storages as persistent ids, as torch does."""

    dispatch = dict(pickle._Pickler.dispatch)
    dispatch[Name] = lambda self, name: self.write(
        pickle.GLOBAL + f"{name.module}\n{name.name}\n".encode())

    def __init__(self, file, legacy):
        super().__init__(file, protocol=2)
        self.legacy = legacy

    def persistent_id(self, obj):
        if not isinstance(obj, _Storage):
            return None
        item = obj.item
        pid = ("storage", Name("torch", item.storage_type or STORAGE_TYPES[item.data.dtype.name]),
               obj.key, "cpu", len(item.data) if item.num_elements is None else item.num_elements)
        return (*pid, None) if self.legacy else pid


def state_pickle(tensors, *, legacy):
    """The pickle of the state dict {name: Stored}, and its storages in order."""
    storages = [_Storage(item, index) for index, item in enumerate(tensors.values())]
    state = collections.OrderedDict(
        (name, Call(Name("torch._utils", "_rebuild_tensor_v2"), storage, item.offset,
                    tuple(item.size), tuple(item.stride), False,
                    Call(Name("collections", "OrderedDict"))))
        for (name, item), storage in zip(tensors.items(), storages, strict=True))
    # What Module.state_dict() attaches, pickled with BUILD (the one BUILD the reader allows).
    state._metadata = collections.OrderedDict([("", {"version": 1})])
    stream = io.BytesIO()
    _Pickler(stream, legacy).dump(state)
    return stream.getvalue(), storages


def pth_bytes(tensors, *, layout="zip", byteorder="little", member_bytes=None):
    """A `.pth` file's bytes; `member_bytes` {key: bytes or None} replaces (None: leaves out)
    a zip storage member."""
    if layout == "legacy":
        return legacy_bytes(*state_pickle(tensors, legacy=True))
    pickled, storages = state_pickle(tensors, legacy=False)
    stream = io.BytesIO()
    with zipfile.ZipFile(stream, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.pkl", pickled)
        archive.writestr("archive/byteorder", byteorder)
        for storage in storages:
            raw = (member_bytes or {}).get(storage.key, _raw(storage.item))
            if raw is not None:
                archive.writestr(f"archive/data/{storage.key}", raw)
        archive.writestr("archive/version", "3\n")
    return stream.getvalue()


def pickled(obj):
    """`obj` pickled as torch's legacy format does (protocol 2, `Name` as GLOBAL)."""
    stream = io.BytesIO()
    _Pickler(stream, legacy=True).dump(obj)
    return stream.getvalue()


def legacy_bytes(pickled, storages=(), *, header=None):
    """The legacy stream: magic, protocol, system info, the state pickle, keys, storages."""
    header = header or {"protocol_version": 1001, "little_endian": True,
                        "type_sizes": {"short": 2, "int": 4, "long": 4}}
    parts = [pickle.dumps(LEGACY_MAGIC, 2), pickle.dumps(1001, 2), pickle.dumps(header, 2),
             pickled, pickle.dumps([storage.key for storage in storages], 2)]
    for storage in storages:
        item = storage.item
        count = len(item.data) if item.num_elements is None else item.num_elements
        parts += [struct.pack("<q", count), _raw(item)]
    return b"".join(parts)


def _raw(item):
    return item.data.astype(item.data.dtype.newbyteorder("<")).tobytes()


def genuine_tensors():
    """A small state dict like a network's: several dtypes, a transposed (strided) view."""
    rng = np.random.default_rng(0)
    base = np.arange(24, dtype=np.float32).reshape(4, 6)
    transposed = stored(base)
    transposed.size, transposed.stride = (6, 4), (1, 6)  # base.T, sharing base's layout
    return {"conv.weight": stored(rng.standard_normal((4, 3, 3, 3)).astype(np.float32)),
            "bn.running_mean": stored(rng.standard_normal(4).astype(np.float32)),
            "bn.num_batches_tracked": Stored(np.array([7], np.int64), (), ()),  # 0-d, as torch
            "transposed": transposed,
            "half": stored(np.ones(3, np.float16))}


def expected_arrays(tensors):
    """What a correct reader returns for `tensors`."""
    arrays = {}
    for name, item in tensors.items():
        view = np.lib.stride_tricks.as_strided(
            item.data[item.offset:], shape=tuple(item.size),
            strides=[step * item.data.itemsize for step in item.stride])
        arrays[name] = np.array(view)
    return arrays


def with_declared_size(zip_bytes, member, size):
    """The zip with `member`'s uncompressed size in its central directory set to `size` (what
    a zip bomb declares, or a forged header)."""
    data = bytearray(zip_bytes)
    start = data.index(b"PK\x01\x02" )  # the first central directory entry
    while start != -1:
        name_length = struct.unpack_from("<H", data, start + 28)[0]
        if data[start + 46:start + 46 + name_length] == member.encode():
            struct.pack_into("<I", data, start + 24, size)
            return bytes(data)
        start = data.find(b"PK\x01\x02", start + 46)
    raise ValueError(f"no member {member}")


def _one_tensor(item, layout="legacy", **options):
    return pth_bytes({"weight": item}, layout=layout, **options)


def crafted_files():
    """{case: (file bytes, regular expression its refusal must match)}: what an attacker
    writes. Each stays under a few kilobytes; none needs PyTorch to make."""
    ones = np.ones(8, np.float32)
    genuine = genuine_tensors()
    return {
        "offset past the storage": (
            _one_tensor(Stored(ones, (4,), (1,), offset=6)), "reaches outside its storage"),
        "1-element storage viewed as 8": (
            _one_tensor(Stored(ones[:1], (8,), (1,))), "reaches outside its storage"),
        "size 2^28": (_one_tensor(Stored(ones, (2**28,), (1,))), "reaches outside its storage"),
        "stride past the storage": (
            _one_tensor(Stored(ones, (2, 2), (1, 10**6)), layout="zip"),
            "reaches outside its storage"),
        "negative stride": (
            _one_tensor(Stored(ones, (4,), (-10**6,), offset=4)), "negative offset, size or "
                                                                 "stride"),
        "stride 0 asking for terabytes": (
            _one_tensor(Stored(ones[:1], (2**20, 2**20), (0, 0))), "over the cap"),
        "zip member shorter than its storage": (
            _one_tensor(Stored(ones, (8,), (1,)), layout="zip", member_bytes={"0": b"\0" * 10}),
            "holds 10 bytes; its storage declares 32"),
        "zip member missing": (
            _one_tensor(Stored(ones, (8,), (1,)), layout="zip", member_bytes={"0": None}),
            "has no member 'archive/data/0'"),
        "legacy storage count unlike its header": (
            _one_tensor(Stored(ones, (8,), (1,))).replace(
                struct.pack("<q", 8) + ones.tobytes(), struct.pack("<q", 9) + ones.tobytes()),
            "holds 9 elements; its header declares 8"),
        "2^40-byte payload declared in a 411-byte file": (
            _one_tensor(Stored(ones[:1], (1,), (1,), num_elements=2**38)), "over the cap"),
        "zip bomb (a member declaring 3 GiB)": (
            with_declared_size(pth_bytes(genuine), "archive/data.pkl", 3 << 30),
            "declares 3,221,225,472 bytes, over the cap"),
        "BUILD on the tensor factory": (
            b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\nN}X\x08\x00\x00\x00to_numpyNs\x86b.",
            "refused: pickle opcode BUILD on a function"),
        "foreign global (os.system)": (
            pickled(Call(Name("os", "system"), "true")), "refused: it names 'os.system'.*run"),
        "instance opcode (NEWOBJ)": (
            b"\x80\x02ccollections\nOrderedDict\n)\x81.", "refused: pickle opcode NEWOBJ"),
        "persistent id of another shape": (
            b"\x80\x02X\x07\x00\x00\x00storageX\x04\x00\x00\x00evil\x86Q.",
            "persistent id .* is not a storage's"),
        "empty state dict": (legacy_bytes(pickled(collections.OrderedDict())),
                             "holds no tensor"),
        "a number among the tensors": (
            legacy_bytes(pickled(collections.OrderedDict(weight=3))), "'weight'.* not a tensor"),
        "BFloat16Storage": (
            _one_tensor(Stored(ones, (8,), (1,), storage_type="BFloat16Storage")),
            "unsupported: .*'torch.BFloat16Storage'"),
        "_rebuild_parameter": (
            legacy_bytes(pickled(collections.OrderedDict(
                weight=Call(Name("torch._utils", "_rebuild_parameter"), 1, False, None)))),
            "unsupported: .*'torch._utils._rebuild_parameter'"),
        "big-endian zip": (pth_bytes(genuine, byteorder="big"), "unsupported: its byte order"),
        "big-endian legacy": (
            legacy_bytes(*state_pickle(genuine, legacy=True),
                         header={"protocol_version": 1001, "little_endian": False}),
            "unsupported: .*big-endian"),
    }
