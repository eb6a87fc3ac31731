"""Keras recurrent-layer semantics around torch's RNN kernels, and the cells torch lacks.

``KerasRNN`` gives a recurrent core Keras's ``RNN.call`` behaviour ([K3] ``layers/rnn/rnn.py``, [TFK]
``layers/rnn/base_rnn.py``): zero initial states unless given, ``go_backwards`` (the sequence is processed and
returned reversed), ``return_sequences`` (else the last processed step), ``return_state``, and masks as in
[K3] ``backend/tensorflow/rnn.py`` / [TFK] ``backend.rnn``: at a masked step the states keep their previous
value and the output is the previous step's output (zeros before the first unmasked step), or zeros when
``zero_output_for_mask`` (forced to ``return_sequences`` inside ``Bidirectional``).

The core is a real ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` (``batch_first=True``) where torch computes exactly what
Keras does, so torch's fused kernels run; a masked call steps through the same weights one time step at a
time. Cells torch lacks (GRU ``reset_after=False``, other activations, ConvLSTM) are modules here that project
the inputs of all time steps at once and loop only over the recurrent part. Gate order is torch's
throughout: LSTM i, f, g, o (= Keras i, f, c, o); GRU r, z, n (Keras z, r, h).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

Step = Callable[[torch.Tensor, list[torch.Tensor]], tuple[torch.Tensor, list[torch.Tensor]]]
TORCH_RNNS = (nn.LSTM, nn.GRU, nn.RNN)


# -- one time step ---------------------------------------------------------------------------------------
def lstm_step(p: torch.Tensor, h: torch.Tensor, c: torch.Tensor, weight_hh: torch.Tensor,
              activation: Callable, recurrent_activation: Callable) -> tuple[torch.Tensor, torch.Tensor]:
    """[K3] ``LSTMCell.call``: ``z = x W + b + h R``; i, f, g, o = rec(z_i), rec(z_f), act(z_g), rec(z_o);
    ``c' = f c + i g``, ``h' = o act(c')``. ``p`` is the input part ``x W + b``."""
    i, f, g, o = (p + F.linear(h, weight_hh)).chunk(4, dim=-1)
    c = recurrent_activation(f) * c + recurrent_activation(i) * activation(g)
    return recurrent_activation(o) * activation(c), c


def gru_step(p: torch.Tensor, h: torch.Tensor, weight_hh: torch.Tensor, bias_hh: torch.Tensor | None,
             activation: Callable, recurrent_activation: Callable) -> torch.Tensor:
    """GRU ``reset_after=True`` (= torch): ``n = act(x W_n + b_n + r (h R_n + b_hn))``, ``h' = (1 - z) n + z h``."""
    hr, hz, hn = F.linear(h, weight_hh, bias_hh).chunk(3, dim=-1)
    pr, pz, pn = p.chunk(3, dim=-1)
    r = recurrent_activation(pr + hr)
    z = recurrent_activation(pz + hz)
    n = activation(pn + r * hn)
    return z * h + (1 - z) * n


def gru_reset_before_step(p: torch.Tensor, h: torch.Tensor, weight_hh: torch.Tensor, activation: Callable,
                          recurrent_activation: Callable) -> torch.Tensor:
    """GRU ``reset_after=False`` ([K3] ``GRUCell.call``, the Keras 2 / GRU v1 default): the reset gate scales
    ``h`` before the matmul, ``n = act(x W_n + b_n + (r h) R_n)``; torch has no such mode."""
    units = h.shape[-1]
    hr, hz = F.linear(h, weight_hh[: 2 * units]).chunk(2, dim=-1)
    pr, pz, pn = p.chunk(3, dim=-1)
    r = recurrent_activation(pr + hr)
    z = recurrent_activation(pz + hz)
    n = activation(pn + F.linear(r * h, weight_hh[2 * units:]))
    return z * h + (1 - z) * n


def identity(x: torch.Tensor) -> torch.Tensor:
    return x


# -- loops -----------------------------------------------------------------------------------------------
def step_loop(step: Step, projected: torch.Tensor, states: list[torch.Tensor]
              ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Run ``step`` over time-major ``projected`` (T, B, ...): (outputs (B, T, ...), final states)."""
    outputs = []
    for t in range(projected.shape[0]):
        out, states = step(projected[t], states)
        outputs.append(out)
    return torch.stack(outputs, dim=1), states


def masked_step_loop(step: Step, projected: torch.Tensor, states: list[torch.Tensor], mask: torch.Tensor,
                     zero_output_for_mask: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Keras's masked loop ([K3] ``backend/tensorflow/rnn.py``, ``masking_fn`` branch): where ``mask[t]`` is
    False the states stay and the output is the previous output (zeros at first), or zeros when
    ``zero_output_for_mask``. ``mask`` is time-major (T, B)."""
    outputs: list[torch.Tensor] = []
    previous: torch.Tensor | None = None
    for t in range(projected.shape[0]):
        out, new_states = step(projected[t], states)
        keep = mask[t].reshape(-1, *([1] * (out.dim() - 1)))
        if previous is None or zero_output_for_mask:
            previous = torch.zeros_like(out)
        out = torch.where(keep, out, previous)
        states = [torch.where(keep.reshape(-1, *([1] * (s.dim() - 1))), n, s) for n, s in zip(new_states, states)]
        outputs.append(out)
        previous = out
    return torch.stack(outputs, dim=1), states


# -- torch's own modules, stepped by hand when a mask needs it -----------------------------------------------
def torch_rnn_project(rnn: nn.RNNBase, x: torch.Tensor) -> torch.Tensor:
    """The input part of every gate for all steps, time-major (T, B, G). LSTM and RNN fold ``bias_hh`` in; GRU
    keeps it for the reset gate."""
    bias = None
    if rnn.bias:
        bias = rnn.bias_ih_l0 if isinstance(rnn, nn.GRU) else rnn.bias_ih_l0 + rnn.bias_hh_l0
    return F.linear(x.transpose(0, 1), rnn.weight_ih_l0, bias)


def torch_rnn_step(rnn: nn.RNNBase) -> Step:
    """One step of ``rnn`` (a single-layer unidirectional ``nn.LSTM``/``nn.GRU``/``nn.RNN``) on projected inputs."""
    weight_hh = rnn.weight_hh_l0
    bias_hh = rnn.bias_hh_l0 if rnn.bias else None

    def step(p: torch.Tensor, states: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        if isinstance(rnn, nn.LSTM):
            h, c = lstm_step(p, states[0], states[1], weight_hh, torch.tanh, torch.sigmoid)
            return h, [h, c]
        if isinstance(rnn, nn.GRU):
            h = gru_step(p, states[0], weight_hh, bias_hh, torch.tanh, torch.sigmoid)
        else:
            h = (torch.tanh if rnn.nonlinearity == "tanh" else torch.relu)(p + F.linear(states[0], weight_hh))
        return h, [h]

    return step


def torch_rnn_run(rnn: nn.RNNBase, x: torch.Tensor | nn.utils.rnn.PackedSequence, states: list[torch.Tensor]
                  ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The fused torch kernel over the whole (B, T, F) sequence (or a packed one)."""
    if isinstance(rnn, nn.LSTM):
        out, (h, c) = rnn(x, (states[0].unsqueeze(0), states[1].unsqueeze(0)))
        return out, [h[0], c[0]]
    out, h = rnn(x, states[0].unsqueeze(0))
    return out, [h[0]]


def tracing() -> bool:
    """Under tracing or export a data-dependent choice of path would be baked in: take the general loop."""
    return torch.jit.is_tracing() or torch.compiler.is_compiling()


def contiguous_spans(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(start, length) per row of the one block of unmasked steps in a (B, T) mask, or None when a row has masked
    steps between unmasked ones. Padding before (``pad_sequences``' default) or after the data is such a block."""
    steps = torch.arange(mask.shape[1], device=mask.device)
    length = mask.sum(1)
    first = torch.where(mask, steps, mask.shape[1]).amin(1)
    last = torch.where(mask, steps, -1).amax(1)
    if not bool(((length == 0) | (last - first + 1 == length)).all()):
        return None
    return torch.where(length > 0, first, 0), length


def torch_rnn_run_spans(rnn: nn.RNNBase, x: torch.Tensor, states: list[torch.Tensor], start: torch.Tensor,
                        length: torch.Tensor, zero_output_for_mask: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Keras's masked loop for masks whose unmasked steps form one block per row, as torch's fused kernel on a
    packed sequence: before the block the states stay initial and the outputs are zeros; after it the states
    stay final and the outputs repeat the last one (zeros when ``zero_output_for_mask``). Same numbers as
    ``masked_step_loop``."""
    steps = torch.arange(x.shape[1], device=x.device)
    shifted = x.gather(1, (start[:, None] + steps).clamp(max=x.shape[1] - 1)[..., None].expand(-1, -1, x.shape[2]))
    packed = nn.utils.rnn.pack_padded_sequence(shifted, length.clamp(min=1).cpu(), batch_first=True,
                                               enforce_sorted=False)
    out, final = torch_rnn_run(rnn, packed, states)
    out = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])[0]
    index = torch.minimum((steps[None] - start[:, None]).clamp(min=0), (length[:, None] - 1).clamp(min=0))
    outputs = out.gather(1, index[..., None].expand(-1, -1, out.shape[2]))
    zero = (steps[None] < start[:, None]) | (length[:, None] == 0)
    if zero_output_for_mask:
        zero = zero | (steps[None] >= (start + length)[:, None])
    empty = (length == 0)[:, None]
    return outputs.masked_fill(zero[..., None], 0.0), [torch.where(empty, s0, s) for s, s0 in zip(final, states)]


# -- cells torch lacks -------------------------------------------------------------------------------------
class LoopCell(nn.Module):
    """A recurrent cell run as: input projection of all steps in one op (``project``), then a loop over
    ``step``. Subclasses define ``project``, ``step`` and ``zero_states``."""

    def project(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def step(self, p: torch.Tensor, states: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        raise NotImplementedError

    def zero_states(self, x: torch.Tensor) -> list[torch.Tensor]:
        raise NotImplementedError

    def keras_sequence(self, outputs: torch.Tensor) -> torch.Tensor:
        """Outputs (B, T, ...) as Keras holds them (a conv cell computes channels first)."""
        return outputs

    def keras_state(self, state: torch.Tensor) -> torch.Tensor:
        return state

    def cell_state(self, state: torch.Tensor) -> torch.Tensor:
        """A state given as Keras holds it, as the cell holds it (the inverse of ``keras_state``)."""
        return state

    def forward(self, x: torch.Tensor, states: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return step_loop(self.step, self.project(x), states)


class DenseLoopCell(LoopCell):
    """A cell with dense input and recurrent weights (torch layout: ``weight_ih`` (G, in), ``weight_hh`` (G, u))."""

    state_count = 1

    def __init__(self, input_size: int, units: int, gates: int, bias: bool, activation: nn.Module | None,
                 recurrent_activation: nn.Module | None = None):
        super().__init__()
        self.units = units
        self.weight_ih = nn.Parameter(torch.zeros(gates * units, input_size))
        self.weight_hh = nn.Parameter(torch.zeros(gates * units, units))
        self.bias_ih = nn.Parameter(torch.zeros(gates * units)) if bias else None
        self.activation = activation if activation is not None else nn.Identity()
        self.recurrent_activation = recurrent_activation if recurrent_activation is not None else nn.Identity()

    def project(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x.transpose(0, 1), self.weight_ih, self.bias_ih)

    def zero_states(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [x.new_zeros(x.shape[0], self.units) for _ in range(self.state_count)]

    def extra_repr(self) -> str:
        return f"{self.weight_ih.shape[1]}, {self.units}, bias={self.bias_ih is not None}"


class KerasLSTMCell(DenseLoopCell):
    """LSTM with any activation and recurrent activation ([K3] ``LSTMCell``; Keras 2 / LSTM v1 default to
    ``hard_sigmoid``, which torch's kernel cannot do). Gates i, f, g, o."""

    state_count = 2

    def __init__(self, input_size: int, units: int, bias: bool = True, activation: nn.Module | None = None,
                 recurrent_activation: nn.Module | None = None):
        super().__init__(input_size, units, 4, bias, activation, recurrent_activation)

    def step(self, p: torch.Tensor, states: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        h, c = lstm_step(p, states[0], states[1], self.weight_hh, self.activation, self.recurrent_activation)
        return h, [h, c]


class KerasGRUCell(DenseLoopCell):
    """GRU with ``reset_after`` either way and any activations ([K3] ``GRUCell``). Gates r, z, n (torch order);
    with ``reset_after`` the recurrent bias ``bias_hh`` is separate, without it there is one bias."""

    def __init__(self, input_size: int, units: int, bias: bool = True, reset_after: bool = True,
                 activation: nn.Module | None = None, recurrent_activation: nn.Module | None = None):
        super().__init__(input_size, units, 3, bias, activation, recurrent_activation)
        self.reset_after = reset_after
        self.bias_hh = nn.Parameter(torch.zeros(3 * units)) if bias and reset_after else None

    def step(self, p: torch.Tensor, states: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        if self.reset_after:
            h = gru_step(p, states[0], self.weight_hh, self.bias_hh, self.activation, self.recurrent_activation)
        else:
            h = gru_reset_before_step(p, states[0], self.weight_hh, self.activation, self.recurrent_activation)
        return h, [h]

    def extra_repr(self) -> str:
        return super().extra_repr() + f", reset_after={self.reset_after}"


class KerasSimpleRNNCell(DenseLoopCell):
    """SimpleRNN with an activation ``nn.RNN`` lacks (tanh and relu use ``nn.RNN``): ``h' = act(x W + b + h R)``."""

    def __init__(self, input_size: int, units: int, bias: bool = True, activation: nn.Module | None = None):
        super().__init__(input_size, units, 1, bias, activation)

    def step(self, p: torch.Tensor, states: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        h = self.activation(p + F.linear(states[0], self.weight_hh))
        return h, [h]


class KerasConvLSTMCell(LoopCell):
    """ConvLSTM{1,2,3}D ([K3] ``layers/rnn/conv_lstm.py``): gates = ``input_conv(x)`` (the layer's strides,
    padding, dilation and bias) + ``recurrent_conv(h)`` (stride 1, ``same``, no bias, no dilation); then the
    LSTM update. The input convs of all steps run as one conv over (B*T, C, *S). States are held channels
    first (B, F, *S); ``channels_last`` says whether Keras holds them channels last."""

    def __init__(self, input_conv: nn.Module, recurrent_conv: nn.Module, filters: int, channels_last: bool,
                 activation: nn.Module | None = None, recurrent_activation: nn.Module | None = None):
        super().__init__()
        self.input_conv = input_conv
        self.recurrent_conv = recurrent_conv
        self.filters = filters
        self.channels_last = channels_last
        self.activation = activation if activation is not None else nn.Identity()
        self.recurrent_activation = recurrent_activation if recurrent_activation is not None else nn.Identity()

    def project(self, x: torch.Tensor) -> torch.Tensor:
        batch, steps = x.shape[:2]
        x = x.reshape(batch * steps, *x.shape[2:])
        if self.channels_last:
            x = x.movedim(-1, 1)
        p = self.input_conv(x)
        return p.reshape(batch, steps, *p.shape[1:]).transpose(0, 1)

    def zero_states(self, x: torch.Tensor) -> list[torch.Tensor]:
        shape = self.project(x[:, :1])[0].shape
        zeros = x.new_zeros(shape[0], self.filters, *shape[2:])
        return [zeros, zeros]

    def step(self, p: torch.Tensor, states: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        gates = p + self.recurrent_conv(states[0])
        i, f, g, o = gates.chunk(4, dim=1)
        rec, act = self.recurrent_activation, self.activation
        c = rec(f) * states[1] + rec(i) * act(g)
        h = rec(o) * act(c)
        return h, [h, c]

    def keras_sequence(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs.movedim(2, -1) if self.channels_last else outputs

    def keras_state(self, state: torch.Tensor) -> torch.Tensor:
        return state.movedim(1, -1) if self.channels_last else state

    def cell_state(self, state: torch.Tensor) -> torch.Tensor:
        return state.movedim(-1, 1) if self.channels_last else state


# -- the Keras layer ---------------------------------------------------------------------------------------
class KerasRNN(nn.Module):
    """Keras ``LSTM``/``GRU``/``SimpleRNN``/``ConvLSTM`` call semantics around ``rnn`` (a torch RNN module or a
    ``LoopCell``). ``forward(x, *states, initial_state=None, mask=None)``: initial states come positionally
    (tf.keras files) or as ``initial_state`` (Keras 3), a tensor or a list. Returns the output, or the tuple
    ``(output, *states)`` when ``return_state``."""

    def __init__(self, rnn: nn.Module, return_sequences: bool = False, return_state: bool = False,
                 go_backwards: bool = False, zero_output_for_mask: bool = False, training_refusal: str = ""):
        super().__init__()
        self.rnn = rnn
        self.training_refusal = training_refusal  # why train mode would not be Keras's (raised in train mode)
        self.return_sequences = return_sequences
        self.return_state = return_state
        self.go_backwards = go_backwards
        self.zero_output_for_mask = zero_output_for_mask

    def zero_states(self, x: torch.Tensor) -> list[torch.Tensor]:
        if isinstance(self.rnn, TORCH_RNNS):
            count = 2 if isinstance(self.rnn, nn.LSTM) else 1
            return [x.new_zeros(x.shape[0], self.rnn.hidden_size) for _ in range(count)]
        return self.rnn.zero_states(x)

    def run(self, x: torch.Tensor, states: list[torch.Tensor], mask: torch.Tensor | None
            ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(outputs (B, T, ...) in processing order, final states) of the already time-reversed input."""
        torch_rnn = isinstance(self.rnn, TORCH_RNNS)
        if mask is None:
            return torch_rnn_run(self.rnn, x, states) if torch_rnn else self.rnn(x, states)
        mask = mask.bool()
        spans = contiguous_spans(mask) if torch_rnn and not tracing() else None
        if spans is not None:
            return torch_rnn_run_spans(self.rnn, x, states, *spans, self.zero_output_for_mask)
        projected = torch_rnn_project(self.rnn, x) if torch_rnn else self.rnn.project(x)
        step = torch_rnn_step(self.rnn) if torch_rnn else self.rnn.step
        return masked_step_loop(step, projected, states, mask.transpose(0, 1), self.zero_output_for_mask)

    def forward(self, x: torch.Tensor, *states: torch.Tensor, initial_state: Sequence[torch.Tensor] | None = None,
                mask: torch.Tensor | None = None) -> torch.Tensor | tuple[torch.Tensor, ...]:
        if self.training and self.training_refusal:
            raise RuntimeError(f"train mode is not supported: {self.training_refusal}")
        given = list(states) or initial_state
        if isinstance(given, torch.Tensor):
            given = [given]
        if given and isinstance(self.rnn, LoopCell):
            given = [self.rnn.cell_state(s) for s in given]
        start = list(given) if given else self.zero_states(x)
        if self.go_backwards:
            x = x.flip(1)
            mask = mask.flip(1) if mask is not None else None
        outputs, final = self.run(x, start, mask)
        keras_state = self.rnn.keras_state if isinstance(self.rnn, LoopCell) else identity
        if self.return_sequences:
            output = self.rnn.keras_sequence(outputs) if isinstance(self.rnn, LoopCell) else outputs
        else:
            output = keras_state(outputs[:, -1])
        if self.return_state:
            return (output, *[keras_state(s) for s in final])
        return output

    def extra_repr(self) -> str:
        flags = ["return_sequences", "return_state", "go_backwards", "zero_output_for_mask"]
        return ", ".join(f"{f}=True" for f in flags if getattr(self, f))


class KerasBidirectional(nn.Module):
    """Keras ``Bidirectional`` ([K3] ``layers/rnn/bidirectional.py``): both layers read the same input (the
    backward one with ``go_backwards``); with ``return_sequences`` the backward output is flipped back in time;
    outputs merge by ``concat``/``sum``/``ave``/``mul`` or stay two (``None``). ``return_state`` appends the
    forward states, then the backward ones; initial states split in halves the same way."""

    def __init__(self, forward_layer: KerasRNN, backward_layer: KerasRNN, merge_mode: str | None = "concat"):
        super().__init__()
        self.forward_layer = forward_layer
        self.backward_layer = backward_layer
        self.merge_mode = merge_mode

    def forward(self, x: torch.Tensor, *states: torch.Tensor, initial_state: Sequence[torch.Tensor] | None = None,
                mask: torch.Tensor | None = None) -> torch.Tensor | tuple[torch.Tensor, ...]:
        given = list(states) or list(initial_state or [])
        half = len(given) // 2
        y = self.forward_layer(x, *given[:half], mask=mask)
        y_rev = self.backward_layer(x, *given[half:], mask=mask)
        extra: list[torch.Tensor] = []
        if self.forward_layer.return_state:
            extra = [*y[1:], *y_rev[1:]]
            y, y_rev = y[0], y_rev[0]
        if self.forward_layer.return_sequences:
            y_rev = y_rev.flip(1)
        merged = self.merge(y, y_rev)
        if self.forward_layer.return_state:
            return (*merged, *extra)
        return merged if len(merged) > 1 else merged[0]

    def merge(self, y: torch.Tensor, y_rev: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.merge_mode == "concat":
            return (torch.cat([y, y_rev], dim=-1),)
        if self.merge_mode == "sum":
            return (y + y_rev,)
        if self.merge_mode == "ave":
            return ((y + y_rev) / 2,)
        if self.merge_mode == "mul":
            return (y * y_rev,)
        return (y, y_rev)

    def extra_repr(self) -> str:
        return f"merge_mode={self.merge_mode!r}"


class KerasStackedRNN(nn.Module):
    """``RNN(StackedRNNCells([c1, c2, ...]))``: each step runs the cells in turn, so the whole is the cells' layers
    one after the other, every layer but the last returning its sequence. Masked steps keep every cell's state
    either way."""

    def __init__(self, layers: Sequence[nn.Module]):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, mask=mask)
        return x
