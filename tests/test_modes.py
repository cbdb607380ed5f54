"""The VM compile mode: what its rewrites leave in a graph, and its results."""

import numpy as np
import pytensor
import pytensor.scalar as ps
import pytensor.tensor as pt
from pytensor.compile.builders import OpFromGraph
from pytensor.tensor.elemwise import Elemwise
from pytensor.tensor.special import softmax

from lstm_tutorial.modes import AsType, compile_mode


def test_vm_graph_keeps_numpy_fast_paths():
    x = pt.matrix("x", dtype="float64")
    flags = pt.matrix("flags", dtype="bool")
    y = softmax(x * x * 2.0 + x + 1.0, axis=-1) * pt.cast(flags, "float64")
    function = pytensor.function([x, flags], y, mode=compile_mode("VM"))
    nodes = function.maker.fgraph.toposort()
    elemwise = [node for node in nodes if isinstance(node.op, Elemwise)]
    assert not any(isinstance(node.op, OpFromGraph) for node in nodes)
    assert not any(isinstance(node.op.scalar_op, ps.Composite) for node in elemwise)
    assert all(len(node.inputs) <= 2 for node in elemwise
               if isinstance(node.op.scalar_op, ps.Add | ps.Mul))
    assert not any(isinstance(node.op.scalar_op, ps.Cast) for node in elemwise)
    assert any(isinstance(node.op, AsType) for node in nodes)


def test_vm_results_match_fast_compile():
    rng = np.random.default_rng(0)
    x = pt.matrix("x", dtype="float64")
    flags = pt.matrix("flags", dtype="bool")
    y = softmax(x * x * 2.0 + x + 1.0, axis=-1) * pt.cast(flags, "float64")
    values = rng.standard_normal((3, 5)), rng.random((3, 5)) < 0.5
    expected = pytensor.function([x, flags], y, mode="FAST_COMPILE")(*values)
    actual = pytensor.function([x, flags], y, mode="VM")(*values)
    np.testing.assert_allclose(actual, expected, rtol=1e-12)
