"""What the assembler runs each converted layer on to learn its shapes, in a leaf module that the assembler and
emit both import (emit builds its export examples the same way; it never imports the assembler).

Shapes are found by running examples, batch ``EXAMPLE_BATCH``; a dimension the model leaves open is given each
size of a stand-in pair in turn. Modules built only to be filled with stored weights skip torch's random init.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn

EXAMPLE_BATCH = 2
# Stand-in sizes for the dimensions a model leaves open, tried in turn until every layer accepts them: two
# sizes of different parity, then multiples of 64 (U-Nets), then long sequences (a crop of thousands).
DYNAMIC_SIZES = ((64, 67), (64, 128), (1024, 2048), (16384, 32768))

RANDOM_INITS = ("uniform_", "normal_", "kaiming_uniform_", "kaiming_normal_", "xavier_uniform_", "xavier_normal_",
                "trunc_normal_", "orthogonal_")


@contextlib.contextmanager
def skip_random_init() -> Iterator[None]:
    """Torch modules fill new weights with random numbers that every converter overwrites with Keras's weights;
    skipping that saves time and keeps the throw-away pages from ever becoming resident. Constant inits
    (``ones_``, ``zeros_``) still run: a converter may rely on them (BatchNorm without ``scale``)."""
    saved = {name: getattr(nn.init, name) for name in RANDOM_INITS}
    try:
        for name in RANDOM_INITS:
            setattr(nn.init, name, lambda tensor, *args, **kwargs: tensor)
        yield
    finally:
        for name, fn in saved.items():
            setattr(nn.init, name, fn)
