"""A minimal, restricted reader of PyTorch's `torch.save` files, without torch.

Only what a state dict of dense CPU tensors needs is understood, so that loading
a downloaded weights file cannot run arbitrary code: the unpickler resolves a
short allow-list of globals (OrderedDict, the tensor rebuild functions, the
typed storage classes) to local stand-ins and refuses everything else.

Two container formats exist:
  * zip (torch >= 1.6 default): `<prefix>/data.pkl` is the pickled object, whose
    storages are persistent ids ('storage', StorageType, key, location, numel)
    pointing at raw little/big-endian bytes in `<prefix>/data/<key>`;
    `<prefix>/byteorder` says which (absent means little).
  * legacy (`_use_new_zipfile_serialization=False`, and files written before
    1.6, such as pytorch-fid's weights): consecutive pickles of a magic number,
    the protocol version, system info, the object (persistent ids
    ('storage', StorageType, key, location, numel, view_metadata)) and the
    sorted list of storage keys, followed for each key by an int64 element count
    and that many elements of raw data.
"""
import collections
import io
import pickle
import struct
import zipfile
from typing import Any, BinaryIO, NamedTuple

import ml_dtypes
import numpy as np

LEGACY_MAGIC_NUMBER = 0x1950a86a20f9469cfc6c
LEGACY_PROTOCOL_VERSION = 1001

# torch.<Name>Storage -> element dtype (the byte order comes from the file).
_STORAGE_DTYPES = {
    "DoubleStorage": np.float64,
    "FloatStorage": np.float32,
    "HalfStorage": np.float16,
    "BFloat16Storage": ml_dtypes.bfloat16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}
class StorageType(NamedTuple):
  """Stand-in for a torch.<Name>Storage class: only its element type matters."""
  dtype: Any


class StorageRef(NamedTuple):
  """A storage named by a persistent id; its bytes are read after unpickling."""
  key: str
  dtype: Any
  numel: int


class TensorRef(NamedTuple):
  """A tensor view of a storage, materialised once the storages are read."""
  storage: StorageRef
  offset: int  # in elements
  shape: tuple
  strides: tuple  # in elements


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
  del requires_grad, backward_hooks, metadata  # irrelevant for weights
  return TensorRef(storage, storage_offset, tuple(size), tuple(stride))


def _rebuild_parameter(data, requires_grad, backward_hooks):
  del requires_grad, backward_hooks  # a Parameter is its data for loading purposes
  return data


_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): StorageType(dtype) for name, dtype in _STORAGE_DTYPES.items()},
}


class UnsupportedContentError(pickle.UnpicklingError):
  """The file holds something other than plain tensors and containers."""


class _RestrictedUnpickler(pickle.Unpickler):
  """Resolves only the allow-listed globals; storages become StorageRefs."""

  def __init__(self, file: BinaryIO, persistent_id_length: int, allow_globals: bool = True):
    super().__init__(file)
    self._persistent_id_length = persistent_id_length  # 5 (zip) or 6 (legacy)
    self._allow_globals = allow_globals  # False for the legacy format's plain-data headers

  def find_class(self, module: str, name: str):
    try:
      if not self._allow_globals:
        raise KeyError(name)
      return _ALLOWED_GLOBALS[(module, name)]
    except KeyError:
      raise UnsupportedContentError(
          f"Refusing to load global {module}.{name}: only state dicts of tensors are supported"
      ) from None

  def persistent_load(self, pid):
    if not (isinstance(pid, tuple) and len(pid) == self._persistent_id_length
            and pid[0] == "storage" and isinstance(pid[1], StorageType)):
      raise UnsupportedContentError(f"Unsupported persistent id {pid!r}")
    _, storage_type, key, _location, numel, *view_metadata = pid
    if view_metadata and view_metadata[0] is not None:
      raise UnsupportedContentError("Legacy storage views (torch < 0.4 files) are not supported")
    return StorageRef(str(key), storage_type.dtype, int(numel))


def _materialise(obj, storage_arrays: dict[str, np.ndarray]):
  """Replace every TensorRef in the unpickled containers with a numpy array (a copy)."""
  if isinstance(obj, TensorRef):
    flat = storage_arrays[obj.storage.key]
    extent = obj.offset + sum((n - 1) * s for n, s in zip(obj.shape, obj.strides)) + 1
    if 0 in obj.shape:
      return np.zeros(obj.shape, flat.dtype)
    if obj.offset < 0 or extent > flat.size or min(obj.strides, default=0) < 0:
      raise UnsupportedContentError("Tensor view lies outside its storage")
    base = flat[obj.offset:]
    view = np.lib.stride_tricks.as_strided(
        base, obj.shape, tuple(s * flat.itemsize for s in obj.strides), writeable=False)
    return view.copy(order="C")  # own the memory: tensors in the file may share storages
  if isinstance(obj, dict):
    return type(obj)((k, _materialise(v, storage_arrays)) for k, v in obj.items())
  if isinstance(obj, list):
    return [_materialise(v, storage_arrays) for v in obj]
  if isinstance(obj, tuple) and not isinstance(obj, (StorageRef, StorageType)):
    return tuple(_materialise(v, storage_arrays) for v in obj)
  return obj


def _collect_storages(obj, found: dict[str, StorageRef]) -> dict[str, StorageRef]:
  if isinstance(obj, TensorRef):
    found[obj.storage.key] = obj.storage
  elif isinstance(obj, dict):
    for value in obj.values():
      _collect_storages(value, found)
  elif isinstance(obj, (list, tuple)):
    for value in obj:
      _collect_storages(value, found)
  return found


def _array_from_bytes(raw: bytes, storage: StorageRef, byteorder: str) -> np.ndarray:
  dtype = np.dtype(storage.dtype).newbyteorder("<" if byteorder == "little" else ">")
  if len(raw) != storage.numel * dtype.itemsize:
    raise UnsupportedContentError(
        f"Storage {storage.key}: {len(raw)} bytes for {storage.numel} x {dtype.itemsize}")
  return np.frombuffer(raw, dtype).astype(np.dtype(storage.dtype).newbyteorder("="))


def _load_zip(archive: zipfile.ZipFile):
  pickle_names = [n for n in archive.namelist() if n.endswith("data.pkl") and n.count("/") == 1]
  if len(pickle_names) != 1:
    raise UnsupportedContentError(f"Expected one <prefix>/data.pkl in the archive, found {pickle_names}")
  prefix = pickle_names[0][:-len("data.pkl")]
  byteorder = "little"
  if prefix + "byteorder" in archive.namelist():
    byteorder = archive.read(prefix + "byteorder").decode().strip()
  obj = _RestrictedUnpickler(io.BytesIO(archive.read(pickle_names[0])), persistent_id_length=5).load()
  storages = _collect_storages(obj, {})
  arrays = {key: _array_from_bytes(archive.read(f"{prefix}data/{key}"), ref, byteorder)
            for key, ref in storages.items()}
  return _materialise(obj, arrays)


def _load_plain_pickle(f: BinaryIO) -> Any:
  """One header pickle of the legacy format: plain data, no globals allowed."""
  return _RestrictedUnpickler(f, persistent_id_length=6, allow_globals=False).load()


def _load_legacy(f: BinaryIO):
  magic = _load_plain_pickle(f)
  if magic != LEGACY_MAGIC_NUMBER:
    raise UnsupportedContentError("Not a PyTorch file: bad magic number")
  protocol = _load_plain_pickle(f)
  if protocol != LEGACY_PROTOCOL_VERSION:
    raise UnsupportedContentError(f"Unsupported legacy protocol version {protocol}")
  sys_info = _load_plain_pickle(f)
  byteorder = "little" if sys_info.get("little_endian", True) else "big"
  obj = _RestrictedUnpickler(f, persistent_id_length=6).load()
  storage_keys = _load_plain_pickle(f)
  storages = _collect_storages(obj, {})
  arrays = {}
  for key in storage_keys:
    (numel,) = struct.unpack("<q" if byteorder == "little" else ">q", f.read(8))
    ref = storages.get(key)
    itemsize = np.dtype(ref.dtype).itemsize if ref else None
    if ref is None or numel != ref.numel:
      raise UnsupportedContentError(f"Storage {key} does not match the pickled tensors")
    arrays[key] = _array_from_bytes(f.read(numel * itemsize), ref, byteorder)
  return _materialise(obj, arrays)


def load(path) -> Any:
  """Read a `torch.save` file of tensors and containers; tensors become numpy arrays.

  Raises UnsupportedContentError (an UnpicklingError) on anything else, such as
  pickled modules or arbitrary classes.
  """
  if zipfile.is_zipfile(path):
    with zipfile.ZipFile(path) as archive:
      return _load_zip(archive)
  with open(path, "rb") as f:
    return _load_legacy(f)
