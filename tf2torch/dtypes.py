"""The dtype a converted layer computes in, read from its Keras dtype policy.

Keras layers compute in their policy's compute dtype and cast floating-point inputs to it (``autocast``: [K3]
``layers/layer.py`` ``maybe_convert`` / ``DTypePolicy.convert_input``, [TFK] ``base_layer._maybe_cast_inputs``):
a ``float64`` model keeps float64 weights and computes in float64, and a ``float32`` layer fed float64 casts its
input down. Mixed precision (``mixed_float16`` / ``mixed_bfloat16``) keeps float32 variables and computes in
half precision; tf2torch computes those in float32 and says so. Quantized policies (Keras 3
``model.quantize("int8")``) store integer kernels with scales and are refused by name.
"""

from __future__ import annotations

from typing import Any

import torch

from .errors import ConversionError

HALF_PRECISION = ("float16", "bfloat16", "mixed_float16", "mixed_bfloat16")
TORCH_INPUT_DTYPES = {
    "float16": torch.float32, "bfloat16": torch.float32, "float32": torch.float32, "float64": torch.float64,
    "int8": torch.int64, "int16": torch.int64, "int32": torch.int64, "int64": torch.int64,
    "uint8": torch.int64, "uint16": torch.int64, "bool": torch.bool,
}


def policy_name(value: Any) -> str | None:
    """The policy name of a (normalized) config ``dtype`` value; a dict is a policy we do not know."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict):
        config = value.get("config") if isinstance(value.get("config"), dict) else {}
        name = config.get("name") or "_from_".join(str(config[k]) for k in ("mode", "source_name") if k in config)
        return f"{value.get('class_name', 'unknown policy')}({name or '?'})"
    return str(value)


def compute_dtype(layer: str, class_name: str, value: Any, forced: torch.dtype | None,
                  notices: list[str]) -> torch.dtype | None:
    """The torch dtype a layer computes in (None: not a floating policy, nothing is cast)."""
    if isinstance(value, dict):
        name = policy_name(value)
        if "Quantized" in str(value.get("class_name")) or "int8" in name or "float8" in name:
            raise ConversionError(layer, class_name, f"quantized dtype policy {name} is not supported; convert the "
                                  "float model saved before model.quantize()")
        raise ConversionError(layer, class_name, f"dtype policy {name} is not supported")
    if value is None or value == "float32":
        return forced or torch.float32
    if value == "float64":
        return forced or torch.float64
    if value in HALF_PRECISION:
        notice = (f"the model computes in {value} in Keras; tf2torch converts it to "
                  f"{str(forced or torch.float32).replace('torch.', '')} (expect differences of ~1e-3 from Keras)")
        if notice not in notices:
            notices.append(notice)
        return forced or torch.float32
    if isinstance(value, str) and ("int" in value or value in ("bool", "string")):
        return None
    raise ConversionError(layer, class_name, f"dtype {value!r} is not supported")


def input_dtype(name: str, value: Any, forced: torch.dtype | None, notices: list[str]) -> torch.dtype:
    """The torch dtype of a model input declared with Keras dtype ``value``."""
    dtype = str(value or "float32")
    if dtype not in TORCH_INPUT_DTYPES:
        raise ConversionError(name, "InputLayer", f"input dtype {dtype!r} is not supported")
    torch_dtype = TORCH_INPUT_DTYPES[dtype]
    if torch_dtype.is_floating_point and forced is not None:
        return forced
    if dtype in ("float16", "bfloat16"):
        notices.append(f"input {name} is {dtype} in Keras; the converted model takes float32")
    return torch_dtype


def parse_forced(dtype: str | None) -> torch.dtype | None:
    if dtype in (None, "model", "auto"):
        return None
    if dtype == "float32":
        return torch.float32
    if dtype == "float64":
        return torch.float64
    from .errors import Tf2TorchError

    raise Tf2TorchError(f"dtype must be 'float32', 'float64' or None (the model's own), not {dtype!r}")
