"""Data parallelism over devices and hosts, on JAX's own runtime.

One mesh axis, 'data', spans every device of every process. The training state is
replicated; each batch is split along its example axis. The step is the same jitted
function as on one device: `jax.jit` with NamedShardings (Auto axes) lets XLA partition
it, and statistics that span the batch (BatchNorm, MMD^2, minibatch discrimination)
are computed over the *global* batch, the partitioner inserting the reductions. So the
sharded step computes the single-device function on the same global batch; results
differ only by the order of floating-point sums.

Multi-host: `initialize()` calls `jax.distributed.initialize` from flags or the
environment (SLURM and Cloud TPU are detected by JAX itself); every process computes
the same global batch order and feeds only its own rows (`put_batch`).
"""
from __future__ import annotations

import os
from typing import Any, Callable, Optional

import jax
import numpy as np
from absl import logging
from jax.sharding import NamedSharding, PartitionSpec as P

from jaxgan.errors import UserError

AXIS = 'data'


def initialize(coordinator: Optional[str] = None, num_processes: Optional[int] = None,
               process_id: Optional[int] = None) -> None:
  """Joins a multi-process run when asked by arguments or $JAXGAN_COORDINATOR etc.

  coordinator='auto' asks JAX to find the cluster itself (`jax.distributed.initialize()`
  without arguments: SLURM, Open MPI, Cloud TPU pods, ...); SLURM jobs with more than one
  task are detected without it. With no arguments and no JAXGAN_* variables, nothing
  happens: a single-process run.
  """
  coordinator = coordinator or os.environ.get('JAXGAN_COORDINATOR')
  if num_processes is None and os.environ.get('JAXGAN_NUM_PROCESSES'):
    num_processes = int(os.environ['JAXGAN_NUM_PROCESSES'])
  if process_id is None and os.environ.get('JAXGAN_PROCESS_ID'):
    process_id = int(os.environ['JAXGAN_PROCESS_ID'])
  auto = coordinator == 'auto' or (coordinator is None and int(os.environ.get('SLURM_NTASKS', '1')) > 1)
  if auto:
    jax.distributed.initialize()
    logging.info('process %d of %d (cluster detected by JAX), %d local / %d global devices',
                 jax.process_index(), jax.process_count(), jax.local_device_count(),
                 jax.device_count())
    return
  if coordinator is None and num_processes is None:
    return
  if coordinator is not None and (num_processes is None or process_id is None):
    raise UserError('a multi-process run needs the coordinator address, the number of '
                    'processes and this process id: --coordinator=HOST:PORT '
                    '--num_processes=N --process_id=I (or JAXGAN_COORDINATOR, '
                    'JAXGAN_NUM_PROCESSES, JAXGAN_PROCESS_ID)')
  jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                             process_id=process_id)
  logging.info('process %d of %d, %d local / %d global devices', jax.process_index(),
               jax.process_count(), jax.local_device_count(), jax.device_count())


def make_mesh(num_devices: int = 0) -> jax.sharding.Mesh:
  """A 1-D 'data' mesh over the first `num_devices` devices (0: all, every process)."""
  n = num_devices or jax.device_count()
  if n > jax.device_count():
    raise UserError(f'parallel.num_devices={n} but only {jax.device_count()} devices are visible')
  devices = jax.devices()[:n]
  return jax.make_mesh((n,), (AXIS,), axis_types=(jax.sharding.AxisType.Auto,), devices=devices)


def check_batch(batch_size: int, mesh: jax.sharding.Mesh) -> None:
  """The global batch must split evenly over the devices."""
  n = mesh.shape[AXIS]
  if batch_size % n:
    raise UserError(f'data.batch_size={batch_size} does not split over {n} devices: use a '
                    f'multiple of {n}, or fewer devices (--config.parallel.num_devices)')


def replicated(mesh: jax.sharding.Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharding(mesh: jax.sharding.Mesh, example_axis: int) -> NamedSharding:
  """Sharding of an array whose axis `example_axis` is the example (batch) axis."""
  return NamedSharding(mesh, P(*([None] * example_axis), AXIS))


def shard_step(step_fn: Callable, mesh: jax.sharding.Mesh, example_axis: int) -> Callable:
  """jit(step_fn(state, batch)) with the state replicated, the batch split over `mesh`
  along `example_axis`, the outputs (state, metrics) replicated, and the state donated.

  Both the images and the labels of a batch dict share `example_axis` (labels have no
  trailing pixel axes, which a PartitionSpec does not need to name).
  """
  rep, data = replicated(mesh), batch_sharding(mesh, example_axis)
  return jax.jit(step_fn, in_shardings=(rep, data), out_shardings=(rep, rep), donate_argnums=(0,))


def put_batch(batch: Any, mesh: jax.sharding.Mesh, example_axis: int) -> Any:
  """Global host batch (the same in every process) -> global device arrays; each process
  contributes only its own contiguous block of examples."""
  sharding = batch_sharding(mesh, example_axis)
  nproc, pid = jax.process_count(), jax.process_index()

  def put(x):
    x = np.asarray(x)
    if nproc == 1:
      return jax.device_put(x, sharding)
    size = x.shape[example_axis] // nproc
    local = np.take(x, np.arange(pid * size, (pid + 1) * size), axis=example_axis)
    return jax.make_array_from_process_local_data(sharding, local, x.shape)
  return jax.tree.map(put, batch)


def put_replicated(tree: Any, mesh: jax.sharding.Mesh) -> Any:
  """Host or single-device pytree -> arrays replicated over `mesh` (every process)."""
  sharding = replicated(mesh)
  if jax.process_count() == 1:
    return jax.device_put(tree, sharding)
  return jax.tree.map(
      lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x), np.shape(x)),
      jax.device_get(tree))


def to_host(tree: Any) -> Any:
  """Device pytree -> numpy, each array from this process's first shard. Every array
  fetched here is replicated (state, metrics), so that shard is the whole array; a
  multi-process replicated array is not fully addressable and cannot be fetched whole."""
  def get(x):
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
      return np.asarray(x.addressable_data(0))
    return x
  return jax.device_get(jax.tree.map(get, tree))


def is_chief() -> bool:
  """Process 0 writes the files every process would write alike (metrics, samples)."""
  return jax.process_index() == 0
