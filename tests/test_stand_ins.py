"""``stand_ins``: the facts the assembler and emit share without emit importing the assembler (issue #21). Modules
built only to be filled with stored weights skip torch's random init (assemble.py builds every converted layer,
emit's spelling check rebuilds them inside it); constant inits still run and everything is restored afterwards."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tf2torch import assemble
from tf2torch.emit import inputs as emit_inputs
from tf2torch.stand_ins import DYNAMIC_SIZES, EXAMPLE_BATCH, RANDOM_INITS, skip_random_init

VALUE = 7.0


@pytest.mark.parametrize("name", RANDOM_INITS)
def test_random_init_is_skipped_inside_and_restored_after(name):
    before = getattr(nn.init, name)
    tensor = torch.full((3, 4), VALUE)
    with skip_random_init():
        assert getattr(nn.init, name)(tensor) is tensor
    assert torch.equal(tensor, torch.full((3, 4), VALUE))
    assert getattr(nn.init, name) is before
    before(tensor)  # the real init runs again outside
    assert not torch.equal(tensor, torch.full((3, 4), VALUE))


def test_constant_inits_still_run():
    """A converter may rely on them: BatchNormalization without ``scale`` keeps torch's weight of ones."""
    with skip_random_init():
        norm = nn.BatchNorm2d(4)
    assert torch.equal(norm.weight.detach(), torch.ones(4)) and torch.equal(norm.bias.detach(), torch.zeros(4))


def test_restored_when_the_build_fails():
    before = {name: getattr(nn.init, name) for name in RANDOM_INITS}
    with pytest.raises(RuntimeError, match="a converter failed"), skip_random_init():
        raise RuntimeError("a converter failed")
    assert {name: getattr(nn.init, name) for name in RANDOM_INITS} == before


def test_assembler_and_emit_share_one_set_of_facts():
    assert assemble.EXAMPLE_BATCH is EXAMPLE_BATCH and assemble.DYNAMIC_SIZES is DYNAMIC_SIZES
    assert emit_inputs.EXAMPLE_BATCH is EXAMPLE_BATCH and emit_inputs.DYNAMIC_SIZES is DYNAMIC_SIZES
    assert assemble.skip_random_init is skip_random_init
    small, other = DYNAMIC_SIZES[0]
    assert small % 2 != other % 2  # the first stand-in pair differs in parity (odd/even SAME padding)
