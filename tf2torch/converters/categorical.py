"""Categorical preprocessing: ``Discretization`` and ``CategoryEncoding``.

Traps ([K3] ``layers/preprocessing/discretization.py``, ``category_encoding.py``, ``utils/numerical_utils.py``;
[TFK] ``layers/preprocessing/``): ``Discretization`` is ``tf.raw_ops.Bucketize``, the count of boundaries
``<= x`` (a value equal to a boundary goes to the bucket above it: torch's ``bucketize(right=True)``), int64;
only ``output_mode='int'`` is converted (its one-hot forms are ``CategoryEncoding``'s, applied after it).
``CategoryEncoding`` makes float32 vectors of ``num_tokens`` entries; a (batch,) or (batch, 1) input is one token
per sample. Out-of-range tokens: tf_keras asserts, Keras 3 drops those above the range in ``multi_hot``/``count``
(``bincount``'s ``maxlength``), zeroes them in ``one_hot`` and fails on negative ones; the converted module
raises on any. ``sparse=True`` outputs and ``count_weights`` are refused.
"""

from __future__ import annotations

from ..layout import KERAS
from ..nn.categorical import Bucketize, CategoryEncoding
from .registry import Converted, LayerSpec, converter


def refuse_sparse(spec: LayerSpec) -> None:
    if spec.config.get("sparse"):
        spec.fail("sparse=True (a sparse output tensor) is not supported")


@converter("Discretization", defaults={"epsilon": 0.01, "num_bins": None})
def convert_discretization(spec: LayerSpec) -> Converted:
    refuse_sparse(spec)
    mode = spec.config.get("output_mode", "int")
    if mode != "int":
        spec.fail(f"output_mode {mode!r} is not supported (only 'int'; follow it with CategoryEncoding)")
    boundaries = spec.config.get("bin_boundaries")
    if not isinstance(boundaries, list) or not all(isinstance(b, (int, float)) for b in boundaries):
        spec.fail("the layer has no bin_boundaries in its config (it was never adapted?)")
    if spec.config.get("num_bins") is not None:
        spec.config.get("epsilon")  # adapt()'s settings: the boundaries they produced are what counts
    return Converted(Bucketize(boundaries))


@converter("CategoryEncoding", vocabulary="num_tokens")
def convert_category_encoding(spec: LayerSpec) -> Converted:
    refuse_sparse(spec)
    mode = spec.config.get("output_mode", "multi_hot")
    if mode not in ("one_hot", "multi_hot", "count"):
        spec.fail(f"output_mode {mode!r} is not supported")
    rank = len(spec.input_shape)
    spec.check_declared_size(float(spec.config["num_tokens"]))
    if mode != "one_hot" and rank > 2:
        spec.fail(f"{mode} of a rank-{rank} input is not supported (Keras encodes rank 1 or 2)")
    return Converted(CategoryEncoding(int(spec.config["num_tokens"]), mode), input_layouts=KERAS,
                     output_layouts=KERAS)
