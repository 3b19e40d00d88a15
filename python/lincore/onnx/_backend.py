"""lincore as an onnx.backend.base.Backend: what onnx's backend test suite
(onnx.backend.test.BackendTest) drives. Models run through lincore.onnx.load; inputs and outputs
are numpy arrays, as the interface expects."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx.backend.base import Backend as _Backend
from onnx.backend.base import BackendRep as _BackendRep
from onnx.backend.base import Device, DeviceType, namedtupledict

from ._module import OnnxModule
from ._proto import read_model


def _numpy(v: Any) -> Any:
    return v if isinstance(v, (np.ndarray, list)) else np.asarray(v)


class BackendRep(_BackendRep):
    """A prepared model: run(inputs) with a list (in input order) or a dict of numpy arrays."""

    def __init__(self, module: OnnxModule) -> None:
        self.module = module

    def run(self, inputs: Any, **kwargs: Any) -> tuple:
        m = self.module
        if isinstance(inputs, dict):
            out = m(**inputs)
        elif isinstance(inputs, (list, tuple)):
            out = m(*inputs)
        else:
            out = m(inputs)
        outs = out if len(m.output_names) > 1 else (out,)
        return namedtupledict("Outputs", m.output_names)(*[_numpy(v) for v in outs])


class Backend(_Backend):
    """onnx's Backend interface over lincore.onnx.load (CPU only)."""

    @classmethod
    def prepare(cls, model: Any, device: str = "CPU", **kwargs: Any) -> BackendRep:
        if not cls.supports_device(device):
            raise ValueError(f"lincore runs on the CPU; device {device!r} is not supported")
        return BackendRep(OnnxModule(read_model(model)))

    @classmethod
    def run_model(cls, model: Any, inputs: Any, device: str = "CPU", **kwargs: Any) -> tuple:
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def run_node(
        cls,
        node: onnx.NodeProto,
        inputs: Any,
        device: str = "CPU",
        outputs_info: Any = None,
        **kwargs: Any,
    ) -> tuple:
        """Runs one node: a one-node model with the node's inputs as graph inputs."""
        super().run_node(node, inputs, device=device, outputs_info=outputs_info, **kwargs)
        names = [n for n in node.input if n]
        arrays = [np.asarray(v) for v in inputs]
        if len(arrays) != len(names):
            raise ValueError(f"node {node.op_type} has {len(names)} inputs, got {len(arrays)}")
        graph_inputs = [
            onnx.helper.make_tensor_value_info(
                n, onnx.helper.np_dtype_to_tensor_dtype(a.dtype), a.shape
            )
            for n, a in zip(names, arrays)
        ]
        graph_outputs = [onnx.helper.make_empty_tensor_value_info(n) for n in node.output if n]
        graph = onnx.helper.make_graph([node], "run_node", graph_inputs, graph_outputs)
        opset = kwargs.get("opset_version", onnx.defs.onnx_opset_version())
        imports = [onnx.helper.make_opsetid("", opset)]
        if node.domain:
            imports.append(onnx.helper.make_opsetid(node.domain, 1))
        model = onnx.helper.make_model(graph, opset_imports=imports)
        return cls.prepare(model, device).run(arrays)

    @classmethod
    def supports_device(cls, device: str) -> bool:
        try:
            return Device(device).type == DeviceType.CPU
        except (AttributeError, ValueError, IndexError):
            return False
