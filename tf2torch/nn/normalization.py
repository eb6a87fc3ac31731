"""Normalization modules for the Keras semantics torch's own modules cannot express.

Torch's ``BatchNorm``/``GroupNorm`` want channels on dim 1 and ``LayerNorm``/``RMSNorm`` normalize trailing dims
only; Keras normalizes any axis or axis list. These modules keep torch's parameter names (``weight``, ``bias``,
``running_mean``, ``running_var``) so a state_dict reads like hand-written PyTorch. Formulas and sources:

- ``BatchNormOnAxis`` / ``GroupNormOnAxis``: torch's own modules with the channel axis moved to dim 1 and back.
- ``KerasBatchNorm{1,2,3}d`` (and ``BatchNormOnAxis``): torch's in eval mode; in train mode the moving variance
  follows the biased batch variance where Keras's does, and ``trainable=False`` layers stay in inference mode.
- ``BroadcastBatchNorm``: tf.keras BatchNormalization with an axis list at inference,
  ``(x - moving_mean) * rsqrt(moving_variance + eps) * gamma + beta`` with parameters shaped like the input with
  1 on every non-normalized axis ([TFK] ``layers/normalization/batch_normalization.py``).
- ``LayerNormOnDims``: ``(x - mean) * rsqrt(var + eps) * gamma + beta`` over ``dims`` with the biased variance
  ([K3] ``ops/nn.py`` ``_layer_normalization``, [TFK] ``layer_normalization.py``); with ``rms_scaling`` (Keras 3's
  deprecated flag) ``x * rsqrt(var + eps) * gamma``: the input is NOT centred although the variance is.
- ``RMSNormOnDims``: ``x * rsqrt(mean(x²) + eps) * scale`` ([K3] ``ops/nn.py`` ``_rms_normalization``).
- ``L2Normalize``: ``x / max(‖x‖₂, eps)`` over ``dims``: [K3] ``UnitNormalization`` caps ``rsqrt(Σx²)`` at
  ``1 / 1e-12``; [TFK] ``tf.linalg.l2_normalize`` floors ``Σx²`` at 1e-12, i.e. the norm at 1e-6.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .inplace import WritesOverPrivateInput, may_write_input

# Per batch norm module, its cached eval-mode scale and shift (``KerasTrainingMixin.eval_scale_shift``): kept out
# of the module's own attributes, so copies, pickles and state comparisons never see a cache.
_EVAL_SCALE_SHIFT: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def inference_only(x: torch.Tensor, *parameters: torch.Tensor | None) -> bool:
    """Whether a call needs no autograd record and is not being traced or compiled: the eager inference calls
    that may use values cached from the parameters."""
    if torch.jit.is_scripting() or torch.jit.is_tracing() or torch.compiler.is_compiling():
        return False
    if type(x) is not torch.Tensor:
        return False  # fx proxies, tensor subclasses (fake tensors, functorch wrappers)
    if torch.is_grad_enabled() and (x.requires_grad or any(p is not None and p.requires_grad for p in parameters)):
        return False
    return True


def scale_and_shift(weight: torch.Tensor | None, bias: torch.Tensor | None, mean: torch.Tensor, var: torch.Tensor,
                    eps: float, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode batch norm as ``x * scale + shift``: ``scale = gamma / sqrt(var + eps)``, ``shift = beta - mean *
    scale`` (the order of [TFK] ``tf.nn.batch_normalization`` and of torch's own CPU kernel), shaped (1, C, 1, ...)
    for a rank-``rank`` input."""
    scale = torch.rsqrt(var + eps)
    if weight is not None:
        scale = scale * weight
    shift = -mean * scale if bias is None else bias - mean * scale
    view = (1, -1) + (1,) * (rank - 2)
    return scale.reshape(view), shift.reshape(view)


class KerasTrainingMixin:
    """Keras's train-mode batch normalization on top of torch's. Eval mode is ``x * scale + shift``
    (``scale_and_shift``): one pass, half the time of ``F.batch_norm`` on a channels-last tensor on 2 cores; a call
    autograd does not record takes ``scale`` and ``shift`` from a cache (``eval_scale_shift``), any other (autograd,
    ``torch.export``, ``torch.compile``) computes them in its graph, so every route gives the same numbers.

    - ``biased_moving_variance``: the moving variance follows the biased batch variance ([K3] ``ops.moments``,
      [TFK] non-fused ``tf.nn.moments``); torch (and tf.keras's fused kernel on 4-D/5-D inputs) uses the
      unbiased one. The batch is normalized with the biased variance in all of them.
    - ``frozen``: Keras runs a layer saved with ``trainable=False`` in inference mode even when training
      ([K3] ``call``: ``training and self.trainable``; [TFK] ``if not self.trainable: training = False``).
    - ``training_refusal``: why train mode is not Keras's here (renorm, virtual batches), raised in train mode.
    """

    def __init__(self, *args, biased_moving_variance: bool = False, frozen: bool = False,
                 training_refusal: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        self.biased_moving_variance = biased_moving_variance
        self.frozen = frozen
        self.training_refusal = training_refusal

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            var = self._buffers.get("running_var")
            if var is None or not isinstance(x, torch.Tensor) or x.dtype != var.dtype:  # fx proxies: torch's
                return super().forward(x)
            weight, bias = self._parameters.get("weight"), self._parameters.get("bias")
            if inference_only(x, weight, bias):
                scale, shift = self.eval_scale_shift(x.dim())
                if may_write_input(self):  # the converted model's own call, and nothing else sees x
                    return torch.addcmul(shift, x, scale, out=x)
            else:  # autograd, tracing, export, compile: the same numbers, computed in the graph
                scale, shift = scale_and_shift(weight, bias, self._buffers["running_mean"], var, self.eps, x.dim())
            return torch.addcmul(shift, x, scale)
        if self.frozen:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0,
                                self.eps)
        if self.training_refusal:
            raise RuntimeError(f"train mode is not supported: {self.training_refusal}")
        if not self.biased_moving_variance:
            return super().forward(x)
        var, mean = torch.var_mean(x, dim=[0, *range(2, x.dim())], correction=0)
        with torch.no_grad():  # Keras: moving * momentum + batch * (1 - momentum), torch's momentum = 1 - Keras's
            self.running_mean.lerp_(mean, self.momentum)
            self.running_var.lerp_(var, self.momentum)
            self.num_batches_tracked.add_(1)
        return F.batch_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)

    def eval_scale_shift(self, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``scale_and_shift`` of this module's parameters and statistics, computed once per change of one of
        them (``_version``; ``.data``, dtype or device swapped by ``module.to()`` give new storage) and kept with
        the tensors they came from, so a replaced parameter is never mistaken for its predecessor."""
        sources = (self._parameters.get("weight"), self._parameters.get("bias"), self._buffers.get("running_mean"),
                   self._buffers.get("running_var"))
        stamp = (rank, self.eps, *[(t._version, t.data_ptr()) if t is not None else None for t in sources])
        cached = _EVAL_SCALE_SHIFT.get(self)
        if (cached is not None and cached[0] == stamp and cached[1][0] is sources[0] and cached[1][1] is sources[1]
                and cached[1][2] is sources[2] and cached[1][3] is sources[3]):
            return cached[2]
        weight, bias, mean, var = (t.detach() if t is not None else None for t in sources)
        value = scale_and_shift(weight, bias, mean, var, self.eps, rank)
        _EVAL_SCALE_SHIFT[self] = (stamp, sources, value)
        return value

    def extra_repr(self) -> str:
        flags = [f"{k}=True" for k in ("biased_moving_variance", "frozen") if getattr(self, k)]
        return ", ".join([super().extra_repr(), *flags])


class KerasBatchNorm1d(KerasTrainingMixin, WritesOverPrivateInput, nn.BatchNorm1d):
    """``nn.BatchNorm1d`` that trains as Keras does (see ``KerasTrainingMixin``)."""


class KerasBatchNorm2d(KerasTrainingMixin, WritesOverPrivateInput, nn.BatchNorm2d):
    """``nn.BatchNorm2d`` that trains as Keras does (see ``KerasTrainingMixin``)."""


class KerasBatchNorm3d(KerasTrainingMixin, WritesOverPrivateInput, nn.BatchNorm3d):
    """``nn.BatchNorm3d`` that trains as Keras does (see ``KerasTrainingMixin``)."""


class BatchNormOnAxis(KerasTrainingMixin, nn.BatchNorm1d):
    """``nn.BatchNorm1d`` over channels held on any axis ``dim`` of a tensor of any rank (Keras ``axis`` not on
    dim 1, e.g. the features of a (B, T, F) tensor, or rank > 5); trains as Keras does (``KerasTrainingMixin``)."""

    def __init__(self, num_features: int, dim: int, eps: float = 1e-3, momentum: float = 0.01,
                 affine: bool = True, **training: bool | str):
        super().__init__(num_features, eps=eps, momentum=momentum, affine=affine, **training)
        self.dim = dim

    def _check_input_dim(self, input: torch.Tensor) -> None:  # noqa: A002  (torch's signature)
        if input.dim() < 2:
            raise ValueError(f"expected at least 2-D input, got {input.dim()}-D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.movedim(self.dim, 1)).movedim(1, self.dim)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, dim={self.dim}"


class GroupNormOnAxis(nn.GroupNorm):
    """``nn.GroupNorm`` with the channels (split into contiguous groups) on any axis ``dim``."""

    def __init__(self, num_groups: int, num_channels: int, dim: int, eps: float = 1e-3, affine: bool = True):
        super().__init__(num_groups, num_channels, eps=eps, affine=affine)
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.movedim(self.dim, 1)).movedim(1, self.dim)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, dim={self.dim}"


def optional_parameter(shape: Sequence[int], fill: float, present: bool) -> nn.Parameter | None:
    return nn.Parameter(torch.full(tuple(shape), fill)) if present else None


class BroadcastBatchNorm(nn.Module):
    """Inference batch normalization with statistics and parameters shaped like the input (1 on every
    non-normalized axis): tf.keras ``BatchNormalization(axis=[...])``. Train mode is refused unless ``frozen``
    (a Keras layer with ``trainable=False`` stays in inference mode)."""

    def __init__(self, shape: Sequence[int], eps: float = 1e-3, scale: bool = True, center: bool = True,
                 frozen: bool = False):
        super().__init__()
        self.eps = eps
        self.frozen = frozen
        self.weight = optional_parameter(shape, 1.0, scale)
        self.bias = optional_parameter(shape, 0.0, center)
        self.register_buffer("running_mean", torch.zeros(tuple(shape)))
        self.register_buffer("running_var", torch.ones(tuple(shape)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and not self.frozen:
            raise RuntimeError("train mode is not supported for a batch normalization over an axis list")
        y = (x - self.running_mean) * torch.rsqrt(self.running_var + self.eps)
        if self.weight is not None:
            y = y * self.weight
        return y if self.bias is None else y + self.bias


class LayerNormOnDims(nn.Module):
    """Layer normalization over any ``dims`` with ``weight``/``bias`` shaped like the input (1 on the other
    axes); ``rms_scaling`` divides the uncentred input by the (centred) standard deviation."""

    def __init__(self, dims: Sequence[int], shape: Sequence[int], eps: float = 1e-3, scale: bool = True,
                 center: bool = True, rms_scaling: bool = False):
        super().__init__()
        self.dims = tuple(dims)
        self.eps = eps
        self.rms_scaling = rms_scaling
        self.weight = optional_parameter(shape, 1.0, scale)
        self.bias = optional_parameter(shape, 0.0, center)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        var, mean = torch.var_mean(x, dim=self.dims, correction=0, keepdim=True)
        y = (x if self.rms_scaling else x - mean) * torch.rsqrt(var + self.eps)
        if self.weight is not None:
            y = y * self.weight
        return y if self.bias is None else y + self.bias

    def extra_repr(self) -> str:
        return f"dims={self.dims}, eps={self.eps}, rms_scaling={self.rms_scaling}"


class RMSNormOnDims(nn.Module):
    """RMS normalization over any ``dims``: ``x * rsqrt(mean(x²) + eps) * weight`` (weight broadcast)."""

    def __init__(self, dims: Sequence[int], shape: Sequence[int], eps: float = 1e-6):
        super().__init__()
        self.dims = tuple(dims)
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(tuple(shape)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.square().mean(dim=self.dims, keepdim=True) + self.eps) * self.weight

    def extra_repr(self) -> str:
        return f"dims={self.dims}, eps={self.eps}"


class L2Normalize(nn.Module):
    """``x / max(‖x‖₂, eps)`` over ``dims`` (``F.normalize`` for several axes at once)."""

    def __init__(self, dims: Sequence[int], eps: float = 1e-12):
        super().__init__()
        self.dims = tuple(dims)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x / torch.linalg.vector_norm(x, dim=self.dims, keepdim=True).clamp_min(self.eps)

    def extra_repr(self) -> str:
        return f"dims={self.dims}, eps={self.eps}"


class TFLRN(nn.Module):
    """``LRN`` over the channel axis (1) of N,C,H,W: ``x / (bias + alpha * sum_{|d|<=r} x[c+d]^2) ** beta``
    ([TF] ``lrn_op.cc``: alpha is not divided by the window size, unlike torch's ``LocalResponseNorm``)."""

    def __init__(self, depth_radius: int, bias: float, alpha: float, beta: float):
        super().__init__()
        self.depth_radius, self.bias, self.alpha, self.beta = depth_radius, bias, alpha, beta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.depth_radius
        sq = F.pad(torch.square(x).unsqueeze(1), (0, 0, 0, 0, r, r))
        window = F.avg_pool3d(sq, (2 * r + 1, 1, 1), stride=1).squeeze(1) * (2 * r + 1)
        return x / torch.pow(self.bias + self.alpha * window, self.beta)
