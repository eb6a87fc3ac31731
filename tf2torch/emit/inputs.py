"""What a converted module takes: one entry per ``forward`` argument, with the shape as the module holds it
(channels first where the conversion moved channels) and ``None`` where the Keras model leaves a dimension open."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.fx as fx

from .. import layout as L
from ..dtypes import input_dtype, parse_forced
from ..errors import EmitError
from ..io import conversion_meta
from ..stand_ins import DYNAMIC_SIZES, EXAMPLE_BATCH


@dataclass(frozen=True)
class InputInfo:
    name: str  # the forward argument (the Keras input's name, made an identifier)
    keras_name: str
    shape: tuple[int | None, ...]  # as held, batch first (None, or the batch size the model fixes)
    dtype: torch.dtype
    channels_first: bool
    keras_dtype: str = "float32"  # as the Keras Input declares it (int32 token ids where the module takes int64)

    def example(self, batch: int = EXAMPLE_BATCH, open_size: int = DYNAMIC_SIZES[0][0],
                generator: torch.Generator | None = None) -> torch.Tensor:
        shape = [batch if self.shape[0] is None else self.shape[0],
                 *[open_size if d is None else d for d in self.shape[1:]]]
        if self.dtype.is_floating_point:
            return torch.randn(shape, generator=generator, dtype=self.dtype)
        if self.dtype == torch.bool:
            return torch.randint(0, 2, shape, generator=generator).bool()
        return torch.randint(0, 5, shape, generator=generator, dtype=self.dtype)

    def describe(self) -> str:
        dims = ", ".join("N" if i == 0 and d is None else "?" if d is None else str(d)
                         for i, d in enumerate(self.shape))
        where = " (channels first)" if self.channels_first else ""
        return f"{self.name}: ({dims}) {str(self.dtype).replace('torch.', '')}{where}"


def module_inputs(module: fx.GraphModule) -> list[InputInfo]:
    meta = conversion_meta(module)
    specs = meta["graph"]["input_specs"]
    given = meta.get("input_shapes") or []
    by_name = {s["name"]: (i, s) for i, s in enumerate(specs)}
    placeholders = [node for node in module.graph.nodes if node.op == "placeholder"]
    keras_names = list(getattr(module, "input_names", None) or [s["name"] for s in specs])
    forced = parse_forced(meta.get("dtype"))
    infos = []
    for node, keras_name in zip(placeholders, keras_names):
        if keras_name not in by_name:
            raise EmitError(f"input {node.target}: not among the Keras model's inputs")
        i, spec = by_name[keras_name]
        shape = tuple(spec["shape"])
        if i < len(given) and given[i] is not None:
            shape = tuple(given[i])
        rank = len(shape) + 1
        channels_first = meta["layout"] == "channels_first" and rank in (4, 5)
        full = (meta.get("batch"), *shape)  # a batch the model fixes stays fixed (``assemble.declared_batch``)
        if channels_first:
            full = tuple(full[j] for j in L.to_channels_first_perm(rank))
        infos.append(InputInfo(node.target, spec["name"], full, input_dtype(spec["name"], spec["dtype"], forced, []),
                               channels_first, str(spec["dtype"] or "float32")))
    return infos
