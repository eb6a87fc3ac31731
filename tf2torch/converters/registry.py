"""The Keras layer converters' door to the contract and the registry: the names converters (and users, through
``tf2torch.register``) import, kept here so ``tf2torch.converters.registry`` stays importable.

What a converter receives and returns lives in ``tf2torch/contract.py``; the one registry keyed by (domain,
name), its lookup and the facts declared with each converter in ``tf2torch/registry.py``. A converter is a function
of a ``LayerSpec`` that returns a ``Converted``; it never opens a file and never imports TensorFlow. Registering
the same class name twice is an error.
"""

from __future__ import annotations

from ..contract import (  # noqa: F401  (re-exported)
    EXAMPLE_BATCH,
    INFERENCE_NEUTRAL_KEYS,
    INFERENCE_NEUTRAL_SUFFIXES,
    MAX_DECLARED_ELEMENTS,
    NEUTRAL_CALL_ARGS,
    NO_EFFECT,
    AnyOf,
    Converted,
    Facts,
    LayerSpec,
    TrackedConfig,
    as_conv_weight,
    as_parameter,
    conv_weights_channels_last,
    to_tensor,
    weight_array_dtype,
    weight_dtype,
)
from ..registry import (  # noqa: F401  (re-exported)
    CONFIG_DEFAULTS,
    CONVERTERS,
    OP_PREFIXES,
    ConverterFn,
    converter,
    custom_class,
    custom_converters,
    is_custom,
    is_op_key,
    refusal_reason,
    registered_key,
)
from ..registry import convert as run_converter  # noqa: F401  (the one strictness check, with declared facts)
from ..registry import describe as describe_converter  # noqa: F401
from ..registry import lookup as converter_for  # noqa: F401

# Regularizer key → the endings of the torch parameter names it applies to, as the converters below build them
# (``Facts.regularizers``; ``tf2torch/training.py`` adds the penalties up).
KERNEL_AND_BIAS = {"kernel_regularizer": ("weight",), "bias_regularizer": ("bias",)}
RECURRENT_WEIGHTS = {"kernel_regularizer": ("weight_ih_l0", "weight_ih"),
                     "recurrent_regularizer": ("weight_hh_l0", "weight_hh"),
                     "bias_regularizer": ("bias_ih_l0", "bias_hh_l0", "bias_ih", "bias_hh")}
NORMALIZATION_WEIGHTS = {"gamma_regularizer": ("weight",), "beta_regularizer": ("bias",)}

# The config keys that decide a family's arithmetic (``Facts.arithmetic``), shown for the first layer a verify
# report finds wrong.
CONV_KEYS = ("filters", "kernel_size", "strides", "padding", "dilation_rate", "groups", "depth_multiplier",
             "output_padding", "data_format", "activation", "use_bias")
POOL_KEYS = ("pool_size", "strides", "padding", "data_format", "keepdims")
RNN_KEYS = ("units", "activation", "recurrent_activation", "return_sequences", "return_state", "go_backwards",
            "reset_after", "unroll", "merge_mode")
