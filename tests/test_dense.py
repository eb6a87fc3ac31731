"""Dense on 2-D and N-D input, with and without bias and activation, and after Flatten of conv features."""

import pytest
from harness import check_conversion

CASES = {
    "plain": lambda k: k.Sequential([k.Input((7,)), k.layers.Dense(5)]),
    "no_bias_relu": lambda k: k.Sequential([k.Input((7,)), k.layers.Dense(5, use_bias=False, activation="relu")]),
    "softmax": lambda k: k.Sequential([k.Input((7,)), k.layers.Dense(4, activation="softmax")]),
    "3d_input": lambda k: k.Sequential([k.Input((3, 7)), k.layers.Dense(5, activation="tanh")]),
    "4d_input": lambda k: k.Sequential([k.Input((3, 4, 7)), k.layers.Dense(5)]),
    "after_conv_flatten": lambda k: k.Sequential([
        k.Input((6, 5, 3)), k.layers.Conv2D(4, 3), k.layers.Flatten(), k.layers.Dense(6)]),
    "flatten_conv1d": lambda k: k.Sequential([
        k.Input((9, 3)), k.layers.Conv1D(4, 3), k.layers.Flatten(), k.layers.Dense(6)]),
}


@pytest.mark.parametrize("case", CASES)
def test_dense(case, flavour, tmp_path):
    check_conversion(CASES[case], flavour, tmp_path)


def test_weight_transforms():
    """The named transform against its definition: the transposed kernel, sharing the kernel's memory (a large
    Dense is held once while converting)."""
    import torch

    from tf2torch.converters.dense import dense_kernel_to_linear

    kernel = torch.randn(3 * 4 * 5, 6)
    weight = dense_kernel_to_linear(kernel)
    assert weight.shape == (6, 60)
    for unit in range(6):
        assert torch.equal(weight[unit], kernel[:, unit])
    assert weight.data_ptr() == kernel.data_ptr()
