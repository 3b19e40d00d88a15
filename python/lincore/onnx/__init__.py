"""lincore.onnx: run ONNX models on lincore, export lincore models to ONNX, and onnx's Backend
interface (needs the onnx package: pip install "lincore[onnx]").

    model = lincore.onnx.load("mlp.onnx")   # a lincore module
    probs = model(x)                         # dense chains run as one native call each
    lincore.onnx.export(net, "net.onnx")     # a lincore Sequential for onnxruntime & co.
"""

try:
    import onnx as _onnx  # noqa: F401
except ImportError as e:  # say which extra brings it
    raise ImportError(
        'lincore.onnx needs the onnx package: pip install "lincore[onnx]" (onnx==1.23.2)'
    ) from e

from ._backend import Backend, BackendRep
from ._export import export
from ._module import OnnxModule, load

__all__ = ["Backend", "BackendRep", "OnnxModule", "export", "load"]
