"""One mesh, one named axis: the batch is split over every device, state is replicated.

The mesh uses ``AxisType.Auto`` (GSPMD-style propagation inside ``jit``): our
step functions are written for the global batch and XLA inserts the
cross-device reductions (gradient mean, BatchNorm batch statistics). On one
device every sharding here is a no-op.
"""
from __future__ import annotations

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

DATA = "data"


def make_mesh(devices=None) -> Mesh:
  """A 1-D mesh over all (global) devices with axis name ``data``."""
  devices = list(devices if devices is not None else jax.devices())
  return jax.make_mesh((len(devices),), (DATA,), axis_types=(AxisType.Auto,), devices=devices)


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  """Leading (batch) axis split over ``data``; other axes whole."""
  return NamedSharding(mesh, P(DATA))


def put_batch(mesh: Mesh, *arrays: np.ndarray):
  """Host arrays holding this process's rows of the global batch -> global sharded arrays."""
  sharding = batch_sharded(mesh)
  out = tuple(jax.make_array_from_process_local_data(sharding, np.asarray(a)) for a in arrays)
  return out if len(out) > 1 else out[0]


def put_replicated(mesh: Mesh, tree):
  return jax.device_put(tree, replicated(mesh))


def check_batch(batch_size: int, mesh: Mesh) -> None:
  from sem_jax.errors import SemJaxError
  n = mesh.devices.size
  if batch_size % n:
    raise SemJaxError(f"batch_size {batch_size} is not divisible by the {n} devices of the mesh")
