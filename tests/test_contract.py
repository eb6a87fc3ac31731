"""The leaf contract and the one registry (issue #21): each domain's lookup finds its converter by spelling, and
the one strictness check (``contract.refuse_unread``) refuses, by name, whatever the converter left unread: a
layer's config key or call argument, a raw TF op's attribute, a TFLite builtin's option, a Keras op's argument.
Converters run on hand-built specs (no file, no TensorFlow): what is proved here is the refusal, not arithmetic,
which the layer and op tables prove against Keras."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import torch

from tf2torch import converters, ops, registry  # noqa: F401  (converters, ops: registered)
from tf2torch.contract import Converted, LayerSpec
from tf2torch.errors import ConversionError
from tf2torch.ops import registry as ops_registry

ROOT = Path(__file__).resolve().parents[1] / "tf2torch"
TENSOR = {"__tensor__": 0}


def raw_node(op: str, table: str, extra: dict) -> dict:
    """A raw TF op's (``attrs``) or TFLite builtin's (``options``) node config, one run-time input."""
    return {"op": op, table: extra, "operands": [{"input": 0}], "output_shapes": [[None, 4]]}


# name: (spelling, its domain, (config, call arguments) that convert, the same with one thing nobody reads,
#        what the refusal must name)
REFUSED = {
    "layer config key": ("ReLU", "keras", ({}, {}), ({"bogus_key": 3}, {}), "config key 'bogus_key' = 3"),
    "layer call argument": ("ReLU", "keras", ({}, {}), ({}, {"bogus_arg": 1}), "called with bogus_arg=1"),
    "training=True (tf_keras)": ("Dropout", "keras", ({"rate": 0.5}, {"training": False}),
                                 ({"rate": 0.5}, {"training": True}), "training=True"),
    "raw TF attribute": ("tf.raw>Relu", "tf", (raw_node("Relu", "attrs", {}), {}),
                         (raw_node("Relu", "attrs", {"bogus_attr": 1}), {}), "attribute bogus_attr=1"),
    "TFLite option": ("tflite>RELU", "tflite", (raw_node("RELU", "options", {}), {}),
                      (raw_node("RELU", "options", {"bogus_option": 1}), {}), "option bogus_option=1"),
    "Keras op argument": ("keras.ops.ContractTestOp", "keras.ops", ({}, {"__args__": [TENSOR], "__kwargs__": {}}),
                          ({}, {"__args__": [TENSOR], "__kwargs__": {"flag": True}}), "argument flag=True"),
    "tf_keras op argument": ("tf.contract_test_op", "keras.ops", ({}, {"__args__": [TENSOR], "__kwargs__": {}}),
                             ({}, {"__args__": [TENSOR, True], "__kwargs__": {}}), "argument flag=True"),
}


@pytest.fixture(scope="module")
def contract_test_operation():
    """An operation that ignores its ``flag`` (default False), reached through a Keras 3 and a tf_keras spelling,
    declared with the decorators every shipped operation uses."""
    import tf2torch.ops  # noqa: F401  (registers every shipped operation first)

    @ops_registry.operation("contract_test_op")
    def convert(call):
        call.tensor("x")
        return Converted(torch.nn.Identity())

    for name in ("keras.ops.ContractTestOp", "tf.contract_test_op"):
        ops_registry.spelling(name, "contract_test_op", "x, flag=False")
    yield
    for name in ("keras.ops.ContractTestOp", "tf.contract_test_op"):
        del ops_registry.SPELLINGS[name]
        del registry.REGISTRY[registry.key_of(name)]
    del ops_registry.OPS["contract_test_op"]


def spec_of(spelling: str, config: dict, call_kwargs: dict) -> LayerSpec:
    return LayerSpec("node", spelling, config, [(None, 4)], ["keras"], [torch.float32], "2.15.0",
                     call_kwargs=call_kwargs)


@pytest.mark.parametrize("case", REFUSED)
def test_each_domain_refuses_what_its_converter_left_unread(case, contract_test_operation):
    spelling, domain, clean, unread, named = REFUSED[case]
    assert registry.key_of(spelling)[0] == domain
    fn = registry.lookup(spelling)
    assert fn is not None, spelling
    assert isinstance(registry.convert(fn, spec_of(spelling, *clean)).module, torch.nn.Module)
    with pytest.raises(ConversionError, match=re.escape(named)):
        registry.convert(fn, spec_of(spelling, *unread))


def test_keys_and_spellings_round_trip():
    for domain in registry.DOMAINS:
        names = registry.spellings(domain)
        assert names, domain
        assert all(registry.key_of(n) == (domain, registry.key_of(n)[1]) for n in names)
        assert all(registry.spelling_of(registry.key_of(n)) == n for n in names)


def test_no_keras_class_table_outside_converters():
    """Per-class facts are declared with the converters: the modules that used to hold tables of Keras class
    names (mask policy, training sensitivity, regularizers, Theano flipping) hold none."""
    for module in ("masks.py", "training.py", "theano_kernels.py", "contract.py", "registry.py"):
        tree = ast.parse((ROOT / module).read_text())
        classes = [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant)
                   and isinstance(node.value, str) and node.value in registry.spellings("keras")]
        assert classes == [], (module, classes)


def test_contract_imports_only_leaf_modules():
    tree = ast.parse((ROOT / "contract.py").read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level}
    assert imported <= {"graph", "errors", "layout", "stand_ins"}


# class → (fact, the value verify or transfer reads through api.layer_facts), where they once held a table:
# transfer's KIND_OF_CLASS, verify's RELEVANT_CONFIG and Embedding/CategoryEncoding vocabulary, the Flatten check.
DECLARED = [
    ("Conv2D", "weight_kind", "conv"), ("Convolution3D", "weight_kind", "conv"),
    ("DepthwiseConv1D", "weight_kind", "depthwise"), ("Conv2DTranspose", "weight_kind", "conv_transpose"),
    ("Convolution2DTranspose", "weight_kind", "conv_transpose"), ("Dense", "weight_kind", "dense"),
    ("BatchNormalization", "weight_kind", "batchnorm"), ("SyncBatchNormalization", "weight_kind", None),
    ("LayerNormalization", "weight_kind", "layernorm"), ("GroupNormalization", "weight_kind", "groupnorm"),
    ("LSTM", "weight_kind", "lstm"),
    ("GRU", "weight_kind", "gru"), ("CuDNNLSTM", "weight_kind", None), ("SimpleRNN", "weight_kind", None),
    ("Embedding", "weight_kind", "embedding"), ("MultiHeadAttention", "weight_kind", "attention"),
    ("Embedding", "vocabulary", "input_dim"), ("CategoryEncoding", "vocabulary", "num_tokens"),
    ("Dense", "vocabulary", None), ("Flatten", "flattens", True), ("Reshape", "flattens", False),
    ("BatchNormalization", "arithmetic", ("axis", "epsilon", "center", "scale", "renorm")),
    ("LeakyReLU", "arithmetic", ("alpha", "negative_slope")), ("Lambda", "arithmetic", ()),
    ("my_module.Dense", "weight_kind", None),  # a user's class of that name is not Keras's Dense
]


@pytest.mark.parametrize("class_name, fact, value", DECLARED)
def test_facts_read_outside_the_converters(class_name, fact, value):
    from tf2torch import api

    assert getattr(api.layer_facts(class_name), fact) == value


@pytest.mark.parametrize("family", ["Conv", "Pool", "LSTM", "GRU", "RNN", "Bidirectional"])
def test_each_family_declares_the_keys_of_its_arithmetic(family):
    """Every class verify once matched by a piece of its name (``"Conv" in name``) declares its keys now."""
    names = [n for n in registry.spellings("keras") if family in n and ">" not in n]
    assert names and [n for n in names if not registry.facts(n).arithmetic] == []


def test_reference_side_flips_what_the_converters_declare():
    """verify/keras_side.py repeats Keras 2.3's list of Theano-flipped classes on purpose (the reference side);
    each must be a class whose converter flips its kernel, ConvLSTM2D its recurrent kernel too."""
    from tf2torch.verify.keras_side import THEANO_FLIPPED

    for name in THEANO_FLIPPED:
        assert "kernel" in registry.facts(name).theano_flip, name
    assert "recurrent_kernel" in registry.facts("ConvLSTM2D").theano_flip


@pytest.mark.parametrize("group, kind", [
    # a Keras 3 weights-only file names its layer groups by Keras's default snake-case name; transfer derives
    # their kinds from the declared Facts.weight_kind (no table of its own)
    ("conv2d", "conv"), ("depthwise_conv1d", "depthwise"), ("conv3d_transpose", "conv_transpose"),
    ("dense", "dense"), ("batch_normalization", "batchnorm"), ("layer_normalization", "layernorm"),
    ("lstm", "lstm"), ("gru", "gru"), ("embedding", "embedding"), ("multi_head_attention", "attention"),
    ("simple_rnn", None), ("sync_batch_normalization", None),
])
def test_weights_only_groups_take_the_declared_kinds(group, kind):
    from tf2torch.transfer.source import kind_of_snake

    assert kind_of_snake().get(group) == kind
