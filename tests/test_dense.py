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
    """Named transforms against their obvious definitions."""
    import numpy as np

    from tf2torch.converters.dense import dense_kernel_to_linear, flattened_kernel_to_linear

    rng = np.random.default_rng(0)
    kernel = rng.standard_normal((3 * 4 * 5, 6))  # (H*W*C, units) with H=3, W=4, C=5
    np.testing.assert_array_equal(dense_kernel_to_linear(kernel), kernel.T)
    weight = flattened_kernel_to_linear(kernel, 5, (3, 4))
    for h in range(3):
        for w in range(4):
            for c in range(5):
                np.testing.assert_array_equal(weight[:, c * 12 + h * 4 + w], kernel[h * 20 + w * 5 + c])
    assert weight.flags.c_contiguous
