"""The PyTensor compile modes that training and prediction offer.

``NUMBA`` and ``CVM`` are PyTensor's own modes. ``VM`` is PyTensor's Python
virtual machine (``VMLinker`` without C code) over the ``fast_run`` graph
rewrites, less elementwise fusion. It compiles nothing but the package's own
Numba kernels, which are cached on disk, so a function is ready in about a
second once they are compiled, and in under 10 s on an empty cache. The work
of each update is in those kernels and in BLAS, so the Python loop over the
graph's nodes costs little. Importing
this module (which :mod:`lstm_tutorial.model` does) registers ``VM`` with
PyTensor, so that ``pytensor.function(..., mode="VM")`` works as well.

In ``VM``, PyTensor would otherwise call a Python function per element, or
compile with Numba, for four kinds of node. Four changes keep every node on a
NumPy fast path instead:

- fused elementwise ``Composite`` nodes are left out (no fusion);
- an ``Add`` or ``Mul`` of more than two inputs, which NumPy has no ufunc for,
  becomes a chain of two-input nodes;
- a ``Cast`` becomes NumPy's ``astype`` (the cast of a 16 x 128 dropout mask
  took 1.3 ms, ``astype`` a few microseconds);
- graph-defined Ops (``OpFromGraph``, such as ``Softmax``) are replaced by
  their inner graphs, because their Python implementation compiles the inner
  graph in the default NUMBA mode (9 s on an empty cache).
"""

import numpy as np
import pytensor.scalar as ps
from pytensor.compile.builders import OpFromGraph
from pytensor.compile.mode import Mode, predefined_modes, register_mode
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.graph.rewriting.basic import dfs_rewriter, node_rewriter
from pytensor.graph.rewriting.db import RewriteDatabaseQuery
from pytensor.link.vm import VMLinker
from pytensor.tensor.elemwise import Elemwise

MODES = ("VM", "NUMBA", "CVM")
DEFAULT_MODE = "VM"


@node_rewriter([Elemwise])
def split_nary_add_mul(fgraph, node):
    """Replace an Add or Mul of three or more inputs by a chain of two-input ones."""
    scalar_op = node.op.scalar_op
    if not isinstance(scalar_op, ps.Add | ps.Mul) or len(node.inputs) <= 2:
        return None
    output = node.outputs[0]
    result = node.inputs[0]
    for operand in node.inputs[1:]:
        result = Elemwise(scalar_op)(result, operand)
    if result.type.dtype != output.type.dtype:
        return None
    if result.type.broadcastable != output.type.broadcastable:
        return None
    return [result]


class AsType(Op):
    """Cast a tensor with NumPy's ``astype``; put in place of ``Cast`` by the ``VM`` mode."""

    __props__ = ("dtype",)

    def __init__(self, dtype):
        self.dtype = dtype

    def make_node(self, x):
        return Apply(self, [x], [x.type.clone(dtype=self.dtype)()])

    def perform(self, node, inputs, output_storage):
        output_storage[0][0] = np.asarray(inputs[0]).astype(self.dtype)

    def infer_shape(self, *args):
        # PyTensor 3.0 passes (fgraph, node, input_shapes), 3.3 (node, input_shapes).
        return args[-1]


@node_rewriter([Elemwise])
def cast_with_astype(fgraph, node):
    """Replace an elementwise Cast by :class:`AsType`."""
    if not isinstance(node.op.scalar_op, ps.Cast):
        return None
    return [AsType(node.outputs[0].type.dtype)(node.inputs[0])]


@node_rewriter([OpFromGraph])
def inline_graph_ops(fgraph, node):
    """Replace an ``OpFromGraph`` node by its inner graph."""
    from pytensor.tensor.rewriting.ofg import inline_ofg_node

    return inline_ofg_node(node)


def vm_mode():
    """Return the ``VM`` mode: Python VM linker, ``fast_run`` rewrites without fusion."""
    mode = Mode(VMLinker(use_cloop=False, c_thunks=False),
                RewriteDatabaseQuery(include=["fast_run"],
                                     exclude=["fusion", "symbolic_op_recognition"]))
    # Position 49 is where fusion would run, after the graph's canonical forms
    # and before the in-place rewrites.
    # Inlining runs first, as PyTensor's own inlining of inline-marked graphs;
    # the rewrites that recognize such graphs (symbolic_op_recognition) are left out.
    return mode.register((dfs_rewriter(inline_graph_ops), -0.005),
                         (dfs_rewriter(split_nary_add_mul), 49),
                         (dfs_rewriter(cast_with_astype), 49.1))


def compile_mode(name):
    """Return what ``pytensor.function(mode=...)`` needs for one of :data:`MODES`."""
    if name == "VM":
        return vm_mode()
    return name


# So that pytensor.function(mode="VM") works too, for example with the mode a
# saved model's options record. A PyTensor that has a VM mode of its own keeps it.
if "VM" not in predefined_modes:
    register_mode("VM", vm_mode())
