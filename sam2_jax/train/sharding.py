"""Device mesh and sharding rules for training (in the style of MaxText / big_vision).

Mesh axes: `data` (batch), `fsdp` (batch too, and parameters / optimizer state sharded over it),
`model` (tensor parallelism through explicit rules; size 1 by default). A leaf's partition spec
is the first rule whose regex matches its path (`jax.tree_util.keystr`); without a matching rule,
a leaf of at least `fsdp_min_size` elements is sharded over `fsdp` along its largest dimension
divisible by the axis size, anything else is replicated. Batches are sharded over
(`data`, `fsdp`) along their leading axis. The same code runs on one device, 8 fake CPU devices
and multi-host meshes (`jax.distributed.initialize()` before building it).
"""

import re
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

AXES = ("data", "fsdp", "model")
BATCH_AXES = ("data", "fsdp")


def make_mesh(data: int = -1, fsdp: int = 1, model: int = 1, devices=None) -> Mesh:
    """A (data, fsdp, model) mesh over `devices` (default all); one size may be -1 (the rest)."""
    devices = list(jax.devices() if devices is None else devices)
    sizes = [data, fsdp, model]
    if sizes.count(-1) > 1:
        raise ValueError(f"at most one mesh axis size may be -1, got {dict(zip(AXES, sizes))}")
    known = int(np.prod([s for s in sizes if s != -1]))
    if -1 in sizes:
        if len(devices) % known:
            raise ValueError(
                f"{len(devices)} devices do not split into mesh {dict(zip(AXES, sizes))}"
            )
        sizes[sizes.index(-1)] = len(devices) // known
    if int(np.prod(sizes)) != len(devices):
        raise ValueError(
            f"mesh {dict(zip(AXES, sizes))} needs {int(np.prod(sizes))} devices, "
            f"{len(devices)} available"
        )
    grid = np.array(devices).reshape(sizes)
    return Mesh(grid, AXES, axis_types=(AxisType.Auto,) * 3)


def partition_specs(
    tree: Any,
    mesh: Mesh,
    rules: Sequence[tuple[str, Sequence[Any]]] = (),
    fsdp_min_size: int = 2**16,
) -> Any:
    """A PartitionSpec per array leaf of `tree` (see the module docstring)."""
    compiled = [(re.compile(pattern), PartitionSpec(*spec)) for pattern, spec in rules]
    fsdp = mesh.shape["fsdp"]

    def spec(path, leaf) -> PartitionSpec:
        name = jax.tree_util.keystr(path)
        for pattern, rule in compiled:
            if pattern.search(name):
                return rule
        shape = np.shape(leaf)
        if fsdp == 1 or int(np.prod(shape, dtype=np.int64)) < fsdp_min_size:
            return PartitionSpec()
        axes = [a for a in np.argsort(shape)[::-1] if shape[a] % fsdp == 0]
        if not axes:
            return PartitionSpec()
        out = [None] * len(shape)
        out[axes[0]] = "fsdp"
        return PartitionSpec(*out)

    return jax.tree_util.tree_map_with_path(spec, tree)


def shardings(tree: Any, mesh: Mesh, rules=(), fsdp_min_size: int = 2**16) -> Any:
    """NamedSharding per leaf of `tree` (`partition_specs` on `mesh`)."""
    specs = partition_specs(tree, mesh, rules, fsdp_min_size)
    return jax.tree.map(lambda s: NamedSharding(mesh, s), specs)


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) axis over (`data`, `fsdp`), the rest replicated."""
    return NamedSharding(mesh, PartitionSpec(BATCH_AXES))
