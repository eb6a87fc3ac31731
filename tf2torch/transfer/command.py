"""``tf2torch transfer SOURCE OUT --into package.module:factory``: the weights of SOURCE into a model the user's
factory builds, written as a ``state_dict`` (``.pt``, loadable with ``torch.load(weights_only=True)``, or
``.safetensors``). Written to a temporary file beside OUT and moved into place, so a refusal leaves nothing."""

from __future__ import annotations

import importlib
import json
import os
import re
import sys
import tempfile
from typing import Any

import click

from ..errors import Tf2TorchError

DTYPES = ("float32", "float64", "float16", "bfloat16", "int64", "int32", "bool")


def build_model(into: str, args: str | None) -> Any:
    """``package.module:factory`` called with ``--args`` (a JSON object of keyword arguments, or a list)."""
    module_name, _, attribute = into.partition(":")
    if not module_name or not attribute:
        raise Tf2TorchError(f"--into {into}: expected package.module:factory (a class or a function)")
    try:
        parsed = json.loads(args) if args else {}
    except ValueError as exc:
        raise Tf2TorchError(f"--args: not JSON ({exc})") from None
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise Tf2TorchError(f"--into {into}: cannot import it ({exc}); is its package on PYTHONPATH?") from None
    try:
        model = factory(**parsed) if isinstance(parsed, dict) else factory(*parsed)
    except Exception as exc:  # the user's code: its failure is the user's to read, in one line
        raise Tf2TorchError(f"--into {into}: the factory failed ({type(exc).__name__}: {exc})") from None
    import torch

    if not isinstance(model, torch.nn.Module):
        raise Tf2TorchError(f"--into {into}: the factory returned a {type(model).__name__}, not a torch.nn.Module")
    return model


def example_inputs(values: tuple[str, ...]) -> tuple | None:
    """``--example-input 1,3,224,224[:float32]`` per input (zeros: only shapes and order matter to matching)."""
    if not values:
        return None
    import torch

    tensors = []
    for value in values:
        shape, _, dtype = value.partition(":")
        if not re.fullmatch(r"\d+(,\d+)*", shape) or (dtype and dtype not in DTYPES):
            raise Tf2TorchError(f"--example-input {value}: expected sizes with commas, then :dtype optionally "
                                f"(one of {', '.join(DTYPES)}), e.g. 1,3,224,224:float32")
        size = [int(s) for s in shape.split(",")]
        tensors.append(torch.randn(size).to(getattr(torch, dtype or "float32")))
    return tuple(tensors)


def write_state_dict(model: Any, out: str) -> None:
    import torch

    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    parent = os.path.dirname(os.path.abspath(out))
    os.makedirs(parent, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(out)}.", suffix=".partial", dir=parent)
    os.close(fd)
    try:
        if out.endswith(".safetensors"):
            from safetensors.torch import save_file

            save_file(state, tmp)
        else:
            torch.save(state, tmp)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_report(report: Any, path: str) -> None:
    text = (report.to_html() if path.endswith(".html") else report.to_json() if path.endswith(".json")
            else report.to_markdown())
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


@click.command("transfer")
@click.argument("source", type=click.Path(dir_okay=False))
@click.argument("out", type=click.Path(dir_okay=False))
@click.option("--into", required=True, help="package.module:factory that builds your torch model.")
@click.option("--args", "factory_args", default=None, help="The factory's arguments: a JSON object or list.")
@click.option("--example-input", "example", multiple=True,
              help="One input's shape (torch layout), e.g. 1,3,224,224[:float32]; repeat per input.")
@click.option("--mapping", type=click.Path(dir_okay=False), default=None,
              help="JSON: target module (or regular expression) -> source layer; taken before matching.")
@click.option("--save-mapping", type=click.Path(dir_okay=False), default=None,
              help="Write the pairs found as JSON, to read, edit and pass to --mapping.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False), default=None,
              help="Write the report: .html, .md or .json.")
@click.option("--no-strict", is_flag=True, help="Load what fits exactly and list the rest, instead of refusing.")
def transfer_command(source: str, out: str, into: str, factory_args: str | None, example: tuple[str, ...],
                     mapping: str | None, save_mapping: str | None, report_path: str | None, no_strict: bool) -> None:
    """Load SOURCE's weights (Keras .h5/.keras, save_weights .h5/.weights.h5, a TF checkpoint, a .tflite model)
    into your own torch model and write its state_dict to OUT (.pt or .safetensors). Exit 1 when the
    verification finds a divergence."""
    from . import transfer

    if not out.endswith((".pt", ".pth", ".safetensors")):
        raise Tf2TorchError(f"{out}: the output is a state_dict, .pt (or .pth) or .safetensors")
    model = build_model(into, factory_args)
    report = transfer(source, model, example_inputs=example_inputs(example), mapping=mapping, strict=not no_strict)
    write_state_dict(model, out)
    if save_mapping:
        report.save_mapping(save_mapping)
    if report_path:
        write_report(report, report_path)
    click.echo(f"{len(report.mapping)} tensors loaded into {type(model).__name__} -> {out}")
    if report.problems():
        click.echo(report.problems())
    if report.loaded and not report.ok:  # the verification found a divergence
        sys.exit(1)
