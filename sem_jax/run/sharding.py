"""One mesh, one named axis: the batch and the noise table are split over every device of
every process; the surrogate state is replicated.

The mesh uses ``AxisType.Auto`` (GSPMD-style propagation inside ``jit``): the step
functions are written for the global batch and XLA inserts the cross-device
reductions (gradient mean, BatchNorm batch statistics) and the scatter into the
sharded noise table. On one device every sharding here is a no-op. Across hosts
(``jax.distributed``) each process feeds only its own rows of each global batch.
"""
from __future__ import annotations


import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

from sem_jax.errors import SemJaxError

DATA = "data"


def default_devices() -> list:
  """The devices a run uses when it names none: every device of every process."""
  return jax.devices()


def make_mesh(devices=None) -> Mesh:
  """A 1-D mesh over ``devices`` (default: [`default_devices`][default_devices]) with axis name ``data``."""
  devices = list(devices if devices is not None else default_devices())
  return jax.make_mesh((len(devices),), (DATA,), axis_types=(AxisType.Auto,), devices=devices)


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  """Leading axis (batch, or noise-table rows) split over ``data``; other axes whole."""
  return NamedSharding(mesh, P(DATA))


def local_rows(mesh: Mesh, rows: int) -> slice:
  """The contiguous rows of a (rows, ...) batch-sharded array that this process holds."""
  spans = batch_sharded(mesh).addressable_devices_indices_map((rows,)).values()
  starts = sorted(s[0].start or 0 for s in spans)
  stops = sorted(rows if s[0].stop is None else s[0].stop for s in spans)
  if stops[-1] - starts[0] != sum(b - a for a, b in zip(starts, stops)):
    raise SemJaxError("this process's devices are not contiguous in the mesh")
  return slice(starts[0], stops[-1])


def put_batch(mesh: Mesh, *global_arrays: np.ndarray):
  """Global host batches (every process holds the same values) -> global sharded arrays,
  each process transferring only its own rows."""
  sl = local_rows(mesh, len(global_arrays[0]))
  return put_local(mesh, len(global_arrays[0]), *(np.asarray(a)[sl] for a in global_arrays))


def gather_batch(mesh: Mesh, idx: np.ndarray, *tables: np.ndarray):
  """The global batch ``idx`` of rows of ``tables`` (+ idx itself) as sharded arrays.

  Each process reads only the rows of ``tables`` that its devices hold, so a lazy
  or memory-mapped table is touched only where this process needs it.
  """
  sl = local_rows(mesh, len(idx))
  mine = idx[sl]
  return put_local(mesh, len(idx), *(t[mine] for t in tables), mine)


def read_batch(mesh: Mesh, idx: np.ndarray, images: np.ndarray, labels: np.ndarray,
               valid: int | None = None) -> dict:
  """The batch dict {x, y, idx[, valid]} of rows ``idx``, batch-sharded (this process's rows).

  ``valid``: how many leading entries are real (padded final batches); adds a bool mask.
  """
  x, y, i = gather_batch(mesh, idx, images, labels)
  batch = {"x": x, "y": y, "idx": i}
  if valid is not None:
    batch["valid"] = put_batch(mesh, np.arange(len(idx)) < valid)
  return batch


def put_local(mesh: Mesh, global_rows: int, *local_arrays: np.ndarray):
  """This process's rows of batch-sharded arrays -> global arrays of ``global_rows`` rows."""
  sharding = batch_sharded(mesh)
  out = tuple(jax.make_array_from_process_local_data(
      sharding, np.asarray(a), (global_rows, *np.shape(a)[1:])) for a in local_arrays)
  return out if len(out) > 1 else out[0]


def put_replicated(mesh: Mesh, tree):
  return jax.device_put(tree, replicated(mesh))


def to_host(x: jax.Array) -> np.ndarray:
  """The full value of a (possibly multi-process) array on every host."""
  if jax.process_count() == 1:
    return np.asarray(x)
  return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def any_process(flag: bool) -> bool:
  """True on every process if flag is True on any (a collective: all processes must call)."""
  if jax.process_count() == 1:
    return bool(flag)
  return bool(np.asarray(multihost_utils.process_allgather(np.int32(flag))).any())


def broadcast_from_first(value: int) -> int:
  """Process 0's integer on every process (a collective)."""
  if jax.process_count() == 1:
    return int(value)
  return int(multihost_utils.broadcast_one_to_all(np.int32(value)))


def sync(name: str) -> None:
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)


def fit_batch(batch_size: int, n_images: int, mesh: Mesh) -> int:
  """The global batch for a training set of ``n_images``: ``batch_size`` when it fits, else the
  largest multiple of the mesh's device count that does (a small folder of photos trains on
  the defaults). Raises when not one image per device fits."""
  if batch_size <= n_images:
    return batch_size
  n = mesh.devices.size
  if n_images < n:
    raise SemJaxError(f"{n_images} training images cannot fill one image per device of the "
                      f"{n}-device mesh; add images or run on fewer devices")
  return n_images // n * n


def check_batch(batch_size: int, mesh: Mesh) -> None:
  n = mesh.devices.size
  if batch_size % n:
    raise SemJaxError(f"batch_size {batch_size} is not divisible by the {n} devices of the mesh")
