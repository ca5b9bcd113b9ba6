"""Appending nodes after an exported graph's output: the shared steps of the sigma corrections.

A correction keeps the output's name (the ONNX contract of
:mod:`lenscast.model.parameter_spec`): the nodes that produced it now write ``raw`` instead, and
the appended nodes read ``raw`` and write the output again.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper


def copy_with_renamed_output(
    model: onnx.ModelProto, output: str, raw: str, *, needs: tuple[str, ...] = ()
) -> onnx.ModelProto:
    """A copy of ``model`` in which ``output`` is produced under the name ``raw``.

    Parameters
    ----------
    model : onnx.ModelProto
        The exported graph (left unchanged).
    output : str
        The graph output the appended nodes will write again.
    raw : str
        The name the original value gets.
    needs : tuple of str
        Further graph outputs the appended nodes read.

    Raises
    ------
    ValueError
        If an output is missing, or ``raw`` exists already (the correction was applied before).
    """
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    names = [o.name for o in graph.output]
    missing = [name for name in (output, *needs) if name not in names]
    if missing:
        raise ValueError(f"graph outputs {names} lack {', '.join(missing)}")
    if any(raw in node.output for node in graph.node):
        raise ValueError(f"the graph already carries this correction ({raw})")
    for node in graph.node:
        node.output[:] = [raw if o == output else o for o in node.output]
        node.input[:] = [raw if i == output else i for i in node.input]
    return out


def add_constant(graph: onnx.GraphProto, name: str, values: Any, dtype: Any = np.float32) -> None:
    """Add ``values`` to ``graph`` as the initializer ``name`` (float32 unless told)."""
    graph.initializer.append(numpy_helper.from_array(np.asarray(values, dtype=dtype), name))


def append_nodes(model: onnx.ModelProto, steps: list[tuple[Any, ...]]) -> onnx.ModelProto:
    """Append ``(op, inputs, output[, attributes])`` steps to ``model``'s graph and check it."""
    for op, inputs, output, *attributes in steps:
        model.graph.node.append(helper.make_node(op, list(inputs), [output],
                                                 **(attributes[0] if attributes else {})))
    onnx.checker.check_model(model)
    return model
