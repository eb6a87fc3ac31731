"""Recurrent layers: LSTM, GRU, SimpleRNN (and ``RNN`` around one of their cells), CuDNNLSTM/CuDNNGRU, Bidirectional,
ConvLSTM1D/2D/3D. Sequences stay in Keras layout (B, T, F).

Traps ([K3] ``layers/rnn/``, [TFK] ``layers/rnn/``): Keras LSTM gates i, f, c, o are torch's i, f, g, o but the
kernels are transposed and torch adds a second bias (set to zero); Keras GRU gates are z, r, h against torch's
r, z, n, and only ``reset_after=True`` (the [K3]/[TFK] default, bias (2, 3u): input row, recurrent row) is torch's
GRU; ``reset_after=False`` (Keras 2 and GRU v1) is a cell of our own; ``hard_sigmoid`` (the Keras 2 / LSTM v1
recurrent activation) means ``clip(0.2x + 0.5)`` in a Keras 2 file and ``relu6(x + 3) / 6`` in a Keras 3 one.
Masked steps keep the previous states and output, see ``nn.recurrent.KerasRNN``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import torch
from torch import nn

from ..layout import KERAS
from ..naming import to_snake_case
from ..nn.recurrent import (
    KerasBidirectional,
    KerasConvLSTMCell,
    KerasGRUCell,
    KerasLSTMCell,
    KerasRNN,
    KerasSimpleRNNCell,
    KerasStackedRNN,
)
from ..transforms import input_and_recurrent_bias, keras_gru_gates_to_torch, keras_gru_to_torch, keras_lstm_to_torch
from .activations import activation_module
from .conv import CONV_BY_RANK, hwio_to_oihw, sequence, strided_conv
from .registry import CONV_KEYS, NO_EFFECT, RECURRENT_WEIGHTS, RNN_KEYS, Converted, LayerSpec, converter, to_tensor


def set_parameters(module: nn.Module, **arrays: np.ndarray | None) -> None:
    """Copy arrays into the module's existing parameters (keeps torch RNNs' flattened weight buffers)."""
    with torch.no_grad():
        for name, array in arrays.items():
            if array is not None:
                getattr(module, name).copy_(to_tensor(array).reshape(getattr(module, name).shape))


# -- config ------------------------------------------------------------------------------------------------
def activation_name(value: Any) -> str:
    if isinstance(value, dict):
        value = (value.get("config") or {}).get("name", value.get("class_name"))
    return str(value).lower()


def activation_or_fail(spec: LayerSpec, value: Any) -> nn.Module | None:
    """``activation_module`` for the Keras that wrote the file (``hard_sigmoid`` differs between 2 and 3)."""
    try:
        return activation_module(value, spec.keras_major)
    except KeyError as exc:
        spec.fail(f"activation {exc.args[0]!r} is not supported")


def cell_activations(spec: LayerSpec, cfg: dict[str, Any]) -> tuple[str, str, nn.Module | None, nn.Module | None]:
    """(activation name, recurrent activation name, modules). Missing keys take the defaults of the Keras that
    wrote the file (``hard_sigmoid`` recurrent activation in Keras 2, CuDNN layers have none: tanh/sigmoid)."""
    act = cfg.get("activation", "tanh")
    rec = cfg.get("recurrent_activation", "sigmoid" if spec.keras_major >= 3 or "CuDNN" in spec.class_name
                  else "hard_sigmoid")
    return activation_name(act), activation_name(rec), activation_or_fail(spec, act), activation_or_fail(spec, rec)


def reject_unsupported(spec: LayerSpec, cfg: dict[str, Any]) -> None:
    if cfg.get("stateful"):
        spec.fail("stateful=True keeps states between calls, which a converted module does not; save the model "
                  "with stateful=False (the weights are the same)")
    if cfg.get("time_major"):
        spec.fail("time_major=True is not supported; save the model with time_major=False")


def dropout_refusal(spec: LayerSpec, cfg: dict[str, Any]) -> str:
    """Keras's ``dropout``/``recurrent_dropout`` masks (drawn once per sequence, applied inside the cell, per gate
    in tf.keras's ``implementation=1``) are not implemented: a layer using them refuses train mode (eval mode,
    where Keras does not apply them, is exact)."""
    rates = {key: float(cfg.get(key, 0.0) or 0.0) for key in ("dropout", "recurrent_dropout")}
    used = ", ".join(f"{key}={rate:g}" for key, rate in rates.items() if rate > 0)
    return f"{spec.name}: {spec.class_name} with {used} (set them to 0 to fine-tune)" if used else ""


def structural_zero(parameter: nn.Parameter | None) -> None:
    """torch's second RNN bias where Keras has one: kept at zero, or each step would train the bias twice."""
    if parameter is not None:
        parameter.requires_grad_(False)


def split_weights(spec: LayerSpec, cfg: dict[str, Any], kernels: int) -> tuple[list[np.ndarray], np.ndarray | None]:
    """(kernels, bias or None) in Keras order."""
    use_bias = bool(cfg.get("use_bias", True))
    arrays = spec.weights(expected=kernels + int(use_bias))
    return arrays[:kernels], (arrays[kernels] if use_bias else None)


# -- cores ---------------------------------------------------------------------------------------------------
def lstm_core(spec: LayerSpec, cfg: dict[str, Any]) -> nn.Module:
    """``nn.LSTM`` for tanh/sigmoid (b_ih = b, b_hh = 0; CuDNNLSTM: the two halves), else ``KerasLSTMCell``."""
    (kernel, recurrent), bias = split_weights(spec, cfg, 2)
    if bias is not None and "CuDNN" in spec.class_name:
        b_ih, b_hh = input_and_recurrent_bias(bias)
    else:
        b_ih, b_hh = bias, None if bias is None else np.zeros_like(bias)
    w_ih, w_hh = keras_lstm_to_torch(kernel, recurrent)
    act, rec, act_module, rec_module = cell_activations(spec, cfg)
    units, size = w_hh.shape[1], w_ih.shape[1]
    if act == "tanh" and rec == "sigmoid":
        lstm = nn.LSTM(size, units, batch_first=True, bias=bias is not None)
        set_parameters(lstm, weight_ih_l0=w_ih, weight_hh_l0=w_hh, bias_ih_l0=b_ih, bias_hh_l0=b_hh)
        if "CuDNN" not in spec.class_name:
            structural_zero(lstm.bias_hh_l0 if bias is not None else None)
        return lstm
    cell = KerasLSTMCell(size, units, bias is not None, act_module, rec_module)
    set_parameters(cell, weight_ih=w_ih, weight_hh=w_hh, bias_ih=None if bias is None else b_ih + b_hh)
    return cell


def gru_core(spec: LayerSpec, cfg: dict[str, Any]) -> nn.Module:
    """``nn.GRU`` for ``reset_after`` with tanh/sigmoid, else ``KerasGRUCell``. CuDNNGRU is ``reset_after``
    with a (6u) bias; a config without ``reset_after`` predates it (Keras < 2.1.4: reset before)."""
    reset_after = True if "CuDNN" in spec.class_name else bool(cfg.get("reset_after", False))
    (kernel, recurrent), bias = split_weights(spec, cfg, 2)
    w_ih, w_hh = keras_gru_to_torch(kernel, recurrent)
    b_ih, b_hh = (bias, None) if bias is None or not reset_after else input_and_recurrent_bias(bias)
    b_ih = None if b_ih is None else keras_gru_gates_to_torch(b_ih)
    b_hh = None if b_hh is None else keras_gru_gates_to_torch(b_hh)
    act, rec, act_module, rec_module = cell_activations(spec, cfg)
    units, size = w_hh.shape[1], w_ih.shape[1]
    if reset_after and act == "tanh" and rec == "sigmoid":
        gru = nn.GRU(size, units, batch_first=True, bias=bias is not None)
        set_parameters(gru, weight_ih_l0=w_ih, weight_hh_l0=w_hh, bias_ih_l0=b_ih, bias_hh_l0=b_hh)
        return gru
    cell = KerasGRUCell(size, units, bias is not None, reset_after, act_module, rec_module)
    set_parameters(cell, weight_ih=w_ih, weight_hh=w_hh, bias_ih=b_ih, bias_hh=b_hh)
    return cell


def simple_rnn_core(spec: LayerSpec, cfg: dict[str, Any]) -> nn.Module:
    """``nn.RNN`` for tanh or relu (b_hh = 0), else ``KerasSimpleRNNCell``."""
    (kernel, recurrent), bias = split_weights(spec, cfg, 2)
    act = activation_name(cfg.get("activation", "tanh"))
    size, units = kernel.shape
    if act in ("tanh", "relu"):
        rnn = nn.RNN(size, units, nonlinearity=act, batch_first=True, bias=bias is not None)
        set_parameters(rnn, weight_ih_l0=kernel.T, weight_hh_l0=recurrent.T, bias_ih_l0=bias,
                       bias_hh_l0=None if bias is None else np.zeros_like(bias))
        structural_zero(rnn.bias_hh_l0 if bias is not None else None)
        return rnn
    cell = KerasSimpleRNNCell(size, units, bias is not None, activation_or_fail(spec, cfg.get("activation")))
    set_parameters(cell, weight_ih=kernel.T, weight_hh=recurrent.T, bias_ih=bias)
    return cell


def conv_lstm_core(spec: LayerSpec, cfg: dict[str, Any]) -> nn.Module:
    """Input conv with the layer's strides/padding/dilation/bias (TF ``SAME`` rules), recurrent conv stride 1
    ``same`` without bias or dilation ([K3] ``ConvLSTMCell.recurrent_conv``); both kernels (*k, in, 4f) → OIHW."""
    (kernel, recurrent), bias = split_weights(spec, cfg, 2)
    step = replace(spec, config=cfg, input_shapes=[(None, *spec.input_shape[2:])])
    pad, conv = strided_conv(step, hwio_to_oihw(kernel), bias, groups=1)
    rank, filters = kernel.ndim - 2, recurrent.shape[-2]
    recurrent_conv = CONV_BY_RANK[rank](filters, 4 * filters, recurrent.shape[:rank], padding="same", bias=False)
    set_parameters(recurrent_conv, weight=hwio_to_oihw(recurrent))
    _, _, act_module, rec_module = cell_activations(spec, cfg)
    channels_last = cfg.get("data_format", "channels_last") != "channels_first"
    return KerasConvLSTMCell(sequence(pad=pad, conv=conv), recurrent_conv, filters, channels_last, act_module,
                             rec_module)


CORES = {"LSTM": lstm_core, "CuDNNLSTM": lstm_core, "GRU": gru_core, "CuDNNGRU": gru_core,
         "SimpleRNN": simple_rnn_core, "ConvLSTM1D": conv_lstm_core, "ConvLSTM2D": conv_lstm_core,
         "ConvLSTM3D": conv_lstm_core}


def keras_rnn(spec: LayerSpec, zero_output_for_mask: bool | None = None) -> KerasRNN:
    """The Keras layer ``spec`` describes (its class, config and weights) as a ``KerasRNN``."""
    cfg = spec.config
    reject_unsupported(spec, cfg)
    check_units(spec, int(cfg["units"]) if "units" in cfg else int(cfg["filters"]))
    core = CORES[spec.class_name](spec, cfg)
    configured = bool(cfg.get("zero_output_for_mask", False))  # Bidirectional decides it for its layers
    if zero_output_for_mask is None:
        zero_output_for_mask = configured
    return KerasRNN(core, bool(cfg.get("return_sequences", False)), bool(cfg.get("return_state", False)),
                    bool(cfg.get("go_backwards", False)), zero_output_for_mask, dropout_refusal(spec, cfg))


GATES = {"LSTM": 4, "CuDNNLSTM": 4, "ConvLSTM1D": 4, "ConvLSTM2D": 4, "ConvLSTM3D": 4, "GRU": 3, "CuDNNGRU": 3,
         "SimpleRNN": 1}


def check_units(spec: LayerSpec, units: int) -> None:
    """The stored kernel and recurrent kernel must be (…, gates·units) and (…, units, gates·units)."""
    handles = spec.weight_handles
    if len(handles) < 2 or spec.class_name not in GATES:
        return
    width = GATES[spec.class_name] * units
    kernel, recurrent = tuple(handles[0].shape), tuple(handles[1].shape)
    if spec.class_name.startswith("ConvLSTM"):
        size = spec.config["kernel_size"]
        size = tuple(size) if isinstance(size, (list, tuple)) else (size,) * (len(kernel) - 2)
        if kernel[:-2] != tuple(int(s) for s in size):
            spec.fail(f"kernel_size {list(size)} disagrees with the stored kernel {kernel}")
    if kernel[-1:] != (width,) or recurrent[-2:] != (units, width):
        spec.fail(f"the config's {units} units imply a kernel (…, {width}) and a recurrent kernel (…, {units}, "
                  f"{width}); the file stores {kernel} and {recurrent} (the config and the weights disagree)")


def recurrent_result(spec: LayerSpec, module: nn.Module, return_sequences: bool) -> Converted:
    """Keras ``RNN.compute_mask``: the input mask goes on to the output only when it is a sequence. Keras 3
    hands the input's mask to ``call`` only when the sequence is the call's one tensor argument ([K3]
    ``Layer.__call__`` step 6): with ``initial_state`` tensors the mask is ignored (but still propagated)."""
    implicit_mask = spec.keras_major < 3 or not any(n != "mask" for n in spec.tensor_kwarg_names)
    return Converted(module, input_layouts=KERAS, output_layouts=KERAS, takes_mask=implicit_mask,
                     output_mask="propagate" if return_sequences else "none")


# -- converters ----------------------------------------------------------------------------------------------
RNN_NO_EFFECT = {
    "dropout": NO_EFFECT, "recurrent_dropout": NO_EFFECT,  # inactive at inference (train mode refuses them)
    "unroll": NO_EFFECT, "implementation": NO_EFFECT,  # how Keras runs the loop, not what it computes
    "unit_forget_bias": NO_EFFECT,  # an initializer
}
TWO_BIASES = frozenset({"bias_regularizer"})  # Keras's one bias is two torch biases (``Facts.several_parameters``)


@converter("LSTM", defaults=RNN_NO_EFFECT, training_sensitive=True, regularizers=RECURRENT_WEIGHTS,
           several_parameters=TWO_BIASES, weight_kind="lstm", arithmetic=RNN_KEYS)
@converter("GRU", defaults=RNN_NO_EFFECT, training_sensitive=True, regularizers=RECURRENT_WEIGHTS,
           several_parameters=TWO_BIASES, weight_kind="gru", arithmetic=RNN_KEYS)
@converter("SimpleRNN", "CuDNNLSTM", "CuDNNGRU", defaults=RNN_NO_EFFECT, training_sensitive=True,
           regularizers=RECURRENT_WEIGHTS, several_parameters=TWO_BIASES, arithmetic=RNN_KEYS)
@converter("ConvLSTM2D", defaults=RNN_NO_EFFECT, training_sensitive=True, theano_flip=("kernel", "recurrent_kernel"),
           arithmetic=CONV_KEYS + RNN_KEYS)
@converter("ConvLSTM1D", "ConvLSTM3D", defaults=RNN_NO_EFFECT, training_sensitive=True, arithmetic=CONV_KEYS + RNN_KEYS)
def convert_recurrent(spec: LayerSpec) -> Converted:
    """A real ``nn.LSTM``/``nn.GRU``/``nn.RNN`` where torch computes what Keras does, wrapped in ``KerasRNN``
    for ``return_sequences``/``return_state``/``go_backwards``/masks/initial states."""
    return recurrent_result(spec, keras_rnn(spec), bool(spec.config.get("return_sequences", False)))


def cell_layer_spec(spec: LayerSpec, cell: dict[str, Any]) -> LayerSpec:
    """``RNN(LSTMCell(...))`` read as ``LSTM(...)``: the cell's config plus the RNN's flags."""
    cell_class = str(cell.get("class_name", ""))
    layer_class = cell_class[: -len("Cell")] if cell_class.endswith("Cell") else cell_class
    if layer_class not in ("LSTM", "GRU", "SimpleRNN"):
        spec.fail(f"RNN around a {cell_class or 'missing'} cell is not supported (LSTMCell, GRUCell and "
                  "SimpleRNNCell are)")
    flags = {k: v for k, v in spec.config.items() if k != "cell"}
    return replace(spec, class_name=layer_class, config={**(cell.get("config") or {}), **flags})


@converter("RNN", defaults=RNN_NO_EFFECT, training_sensitive=True, arithmetic=RNN_KEYS)
def convert_rnn(spec: LayerSpec) -> Converted:
    """``keras.layers.RNN`` around a single ``LSTMCell``/``GRUCell``/``SimpleRNNCell``: the layer of that cell."""
    cell = spec.config.get("cell")
    if isinstance(cell, list):
        cell = {"class_name": "StackedRNNCells", "config": {"cells": cell}}
    if not isinstance(cell, dict):
        spec.fail("the RNN has no cell config")
    if cell.get("class_name") == "StackedRNNCells":
        return convert_stacked_rnn(spec, list((cell.get("config") or {}).get("cells") or []))
    inner = cell_layer_spec(spec, cell)
    return recurrent_result(spec, keras_rnn(inner), bool(spec.config.get("return_sequences", False)))


def convert_stacked_rnn(spec: LayerSpec, cells: list[dict[str, Any]]) -> Converted:
    """``RNN([cell, cell])`` / ``RNN(StackedRNNCells([...]))``: one layer per cell, each with its share of the
    weights (in cell order: kernel, recurrent kernel[, bias]); every layer but the last returns its sequence."""
    if not cells:
        spec.fail("StackedRNNCells without cells")
    for flag in ("return_state", "go_backwards"):
        if spec.config.get(flag):
            spec.fail(f"RNN around stacked cells with {flag}=True is not supported")
    if spec.tensor_kwarg_names and spec.tensor_kwarg_names != ["mask"]:
        spec.fail("RNN around stacked cells called with initial states is not supported")
    return_sequences = bool(spec.config.get("return_sequences", False))
    layers = []
    for i, (cell, handles) in enumerate(zip(cells, stacked_cell_weights(spec, cells))):
        inner = cell_layer_spec(spec, cell)
        flags = {"return_sequences": return_sequences or i < len(cells) - 1, "return_state": False}
        inner = replace(inner, name=f"{spec.name}/cell_{i}", config={**dict(inner.config.items()), **flags},
                        weight_handles=handles)
        layers.append(keras_rnn(inner))
    return recurrent_result(spec, KerasStackedRNN(layers), return_sequences)


def stacked_cell_weights(spec: LayerSpec, cells: list[dict[str, Any]]) -> list[list[Any]]:
    """Each cell's weights, told by the cell's name in the weight's path: ``.h5`` uses the cell's own name,
    ``.keras`` its class in snake case (``lstm_cell``, ``lstm_cell_1``...) and lists the cells in alphabetical
    order of that; otherwise by position."""
    paths = [w.name.split("/") for w in spec.weight_handles]
    seen: dict[str, int] = {}
    by_class = []
    for cell in cells:
        base = to_snake_case(str(cell.get("class_name")))
        by_class.append(base if base not in seen else f"{base}_{seen[base]}")
        seen[base] = seen.get(base, 0) + 1
    for names in ([layer_name(cell) for cell in cells], by_class):
        if len(set(names)) == len(names) and all(sum(n in p for n in names) == 1 for p in paths):
            return [[w for w, p in zip(spec.weight_handles, paths) if n in p] for n in names]
    shares, handles = [], list(spec.weight_handles)
    for cell in cells:
        count = 2 + int(bool((cell.get("config") or {}).get("use_bias", True)))
        shares.append(handles[:count])
        handles = handles[count:]
    if handles:
        spec.fail(f"{len(handles)} stored weights left over after the {len(cells)} cells took theirs")
    return shares


def wrapped_spec(spec: LayerSpec, layer: dict[str, Any], handles: list[Any], side: str) -> LayerSpec:
    """The spec of Bidirectional's forward or backward layer: its config and its share of the weights."""
    class_name = str(layer.get("class_name"))
    config = dict(layer.get("config") or {})
    inner = replace(spec, name=f"{spec.name}/{side}", class_name=class_name, config=config, weight_handles=handles)
    if class_name == "RNN" and isinstance(config.get("cell"), dict):
        inner = cell_layer_spec(inner, config["cell"])
    if inner.class_name not in CORES:
        spec.fail(f"Bidirectional around {class_name} is not supported")
    return inner


def layer_name(layer: dict[str, Any]) -> str:
    return str((layer.get("config") or {}).get("name", ""))


def split_bidirectional_weights(spec: LayerSpec, forward: dict[str, Any], backward: dict[str, Any]
                                ) -> tuple[list[Any], list[Any]]:
    """Forward and backward weights, told by the first part of each weight's path: ``forward_layer`` /
    ``backward_layer`` (.keras), ``forward_<name>`` / ``backward_<name>`` or a custom backward layer's own name
    (.h5). Otherwise by position: the forward layer's (kernel, recurrent kernel[, bias]) come first."""
    backward_names = {"backward_layer", layer_name(backward), "backward_" + layer_name(forward)}
    forward_names = {"forward_layer", layer_name(forward), "forward_" + layer_name(forward)} - backward_names
    firsts = [w.name.split("/")[0] for w in spec.weight_handles]
    if all(f in forward_names | backward_names for f in firsts):
        return ([w for w, f in zip(spec.weight_handles, firsts) if f in forward_names],
                [w for w, f in zip(spec.weight_handles, firsts) if f in backward_names])
    count = 2 + int(bool((forward.get("config") or {}).get("use_bias", True)))
    return spec.weight_handles[:count], spec.weight_handles[count:]


def backward_config(spec: LayerSpec) -> dict[str, Any]:
    """The backward layer: saved in [K3] configs; otherwise the forward one with ``go_backwards`` flipped
    ([TFK] ``Bidirectional.__init__``)."""
    if isinstance(spec.config.get("backward_layer"), dict):
        return spec.config["backward_layer"]
    layer = spec.config.get("layer") or {}
    config = dict(layer.get("config") or {})
    config["go_backwards"] = not config.get("go_backwards", False)
    return {**layer, "config": config}


@converter("Bidirectional", training_sensitive=True, arithmetic=RNN_KEYS)
def convert_bidirectional(spec: LayerSpec) -> Converted:
    """Two ``KerasRNN`` (each a real torch RNN where possible); inside Bidirectional both output zeros at masked
    steps when returning sequences ([K3] ``force_zero_output_for_mask``)."""
    layer = spec.config.get("layer")
    if not isinstance(layer, dict):
        spec.fail("the wrapped layer has no config")
    backward = backward_config(spec)
    forward_weights, backward_weights = split_bidirectional_weights(spec, layer, backward)
    forward_spec = wrapped_spec(spec, layer, forward_weights, "forward")
    backward_spec = wrapped_spec(spec, backward, backward_weights, "backward")
    return_sequences = bool(forward_spec.config.get("return_sequences", False))
    merge_mode = spec.config.get("merge_mode", "concat")
    module = KerasBidirectional(keras_rnn(forward_spec, return_sequences),
                                keras_rnn(backward_spec, return_sequences), merge_mode)
    result = recurrent_result(spec, module, return_sequences)
    if merge_mode is None and return_sequences:
        # [TFK]/[K3] Bidirectional.compute_mask: both unmerged sequences carry the mask, states none.
        result.output_mask = ["propagate", "propagate"]
    return result
