"""The export stage: QONNX / QCDQ export with pruning masks burned in, and export verification."""

from amcprune.export.onnx_export import FORMATS, burned_copy, export_model, export_qcdq, export_qonnx
from amcprune.export.onnx_io import read_onnx, translate_datatype_name, translate_legacy
from amcprune.export.verify import VerifyResult, batch_effect, verify_export

__all__ = [
    "FORMATS",
    "VerifyResult",
    "batch_effect",
    "burned_copy",
    "export_model",
    "export_qcdq",
    "export_qonnx",
    "read_onnx",
    "translate_datatype_name",
    "translate_legacy",
    "verify_export",
]
