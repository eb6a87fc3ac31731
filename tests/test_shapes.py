"""The assembler's shortcut for example outputs (tf2torch/shapes.py) against the real modules: same shape, same
dtype, and no shortcut where the module would fail."""

import pytest
import torch
from torch import nn

from tf2torch.nn.merge import Add, Subtract
from tf2torch.nn.normalization import BatchNormOnAxis, KerasBatchNorm1d, KerasBatchNorm2d
from tf2torch.shapes import predicted_output

CASES = [
    (nn.Conv2d(3, 5, 3), [(2, 3, 9, 8)]),
    (nn.Conv2d(3, 6, (3, 2), stride=(2, 3), padding=(1, 2), dilation=(2, 1), groups=3), [(2, 3, 11, 10)]),
    (nn.Conv1d(4, 2, 5, stride=3, padding=2), [(2, 4, 17)]),
    (nn.Conv3d(2, 3, 2, stride=2), [(2, 2, 5, 6, 7)]),
    (nn.Conv2d(3, 5, 3, padding="same"), [(2, 3, 9, 8)]),
    (nn.Conv2d(3, 5, 3, padding=1, padding_mode="reflect"), [(2, 3, 9, 8)]),
    (nn.BatchNorm2d(3), [(2, 3, 4, 4)]),
    (KerasBatchNorm2d(3), [(2, 3, 4, 4)]),
    (KerasBatchNorm1d(3), [(2, 3, 7)]),
    (nn.BatchNorm1d(3), [(2, 3)]),
    (nn.BatchNorm1d(3), [(2, 3, 7)]),
    (nn.ReLU(), [(2, 3, 4)]),
    (nn.Softmax(dim=-1), [(2, 3, 4)]),
    (nn.ZeroPad2d((1, 2, 3, 0)), [(2, 3, 4, 4)]),
    (nn.ConstantPad1d((2, 0), 0.0), [(2, 3, 4)]),
    (nn.Sequential(nn.ZeroPad2d(1), nn.Conv2d(3, 4, 3, stride=2), nn.ReLU6()), [(2, 3, 8, 9)]),
    (Add(), [(2, 3, 4), (2, 3, 4), (2, 3, 4)]),
    (Subtract(), [(2, 3, 4), (2, 3, 4)]),
    (nn.Linear(3, 4), [(2, 3)]),
    (nn.Linear(3, 4, bias=False), [(2, 5, 7, 3)]),
    (nn.Sequential(nn.Linear(3, 8), nn.GELU()), [(2, 5, 3)]),
    (nn.LayerNorm(4), [(2, 3, 4)]),
    (nn.LayerNorm((3, 4), elementwise_affine=False), [(2, 3, 4)]),
    (nn.LayerNorm(4, bias=False), [(2, 4)]),
]
FAILING = [
    (nn.Conv2d(3, 5, 3), [(2, 4, 9, 8)]),  # wrong channel count
    (nn.Conv2d(3, 5, 5), [(2, 3, 2, 8)]),  # kernel larger than the input
    (nn.BatchNorm2d(3), [(2, 3, 4)]),  # wrong rank
    (Add(), [(2, 3, 4), (2, 1, 4)]),  # broadcasting: runs for real
    (BatchNormOnAxis(4, dim=2), [(2, 3, 4)]),  # a BatchNorm1d subclass with its own axis: runs for real
    (nn.Linear(3, 4), [(2, 4)]),  # wrong feature count
    (nn.Linear(3, 4).double(), [(2, 3)]),  # a float32 input to float64 weights
    (nn.LayerNorm((3, 4)), [(2, 4, 3)]),  # normalized dims that are not the input's trailing ones
]


@pytest.mark.parametrize(("module", "shapes"), CASES, ids=lambda c: repr(c)[:40])
def test_predicted_output_matches_the_module(module, shapes):
    module.eval()
    args = [torch.randn(s) for s in shapes]
    with torch.no_grad():
        real = module(*args)
    predicted = predicted_output(module, args, {})
    if predicted is not None:
        assert predicted.shape == real.shape and predicted.dtype == real.dtype
        assert not predicted.any()


@pytest.mark.parametrize(("module", "shapes"), FAILING, ids=lambda c: repr(c)[:40])
def test_no_shortcut_where_the_module_fails_or_broadcasts(module, shapes):
    assert predicted_output(module.eval(), [torch.randn(s) for s in shapes], {}) is None


def test_the_common_trunk_modules_are_covered():
    """The point of the shortcut: conv, batch norm, activation and residual adds never run at full size, nor a
    transformer's dense layers and layer norms."""
    x, tokens = torch.randn(2, 3, 16, 16), torch.randn(2, 16, 3)
    trunk = ((nn.Conv2d(3, 4, 3), [x]), (nn.BatchNorm2d(3), [x]), (KerasBatchNorm2d(3), [x]), (nn.ReLU(), [x]),
             (Add(), [x, x]), (nn.Linear(3, 5), [tokens]), (nn.LayerNorm(3), [tokens]))
    for module, args in trunk:
        assert predicted_output(module.eval(), args, {}) is not None
