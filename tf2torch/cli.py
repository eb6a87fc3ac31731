"""Command line: ``tf2torch convert | verify | inspect | transfer | layers``.

Errors of our own become one line on stderr and exit code 2; anything unexpected is one line too (exit 3), with
the traceback only when ``TF2TORCH_DEBUG=1``. ``verify`` exits 0 when every layer call is within tolerance and 1
on a mismatch.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any

import click

from .errors import Tf2TorchError
from .transfer import transfer_command


def _one_line(message: str) -> str:
    return " ".join(str(message).split())


def friendly_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Tf2TorchError as exc:
            click.echo(f"error: {_one_line(str(exc))}", err=True)
            sys.exit(2)
        except (click.ClickException, click.exceptions.Exit, SystemExit, KeyboardInterrupt):
            raise
        except MemoryError:  # the reading policy bounds what a file may declare; the machine may hold less
            click.echo("error: out of memory while converting; the model is too large for this machine", err=True)
            sys.exit(2)
        except Exception as exc:  # never a traceback for the user
            if os.environ.get("TF2TORCH_DEBUG"):
                raise
            click.echo(f"internal error: {type(exc).__name__}: {_one_line(str(exc))} "
                       "(a tf2torch bug; rerun with TF2TORCH_DEBUG=1 and report the traceback)", err=True)
            sys.exit(3)
    return wrapper


def return_freed_memory_to_the_os() -> None:
    """Large temporaries (a weight as read, before its transposed copy) go back to the OS when freed. glibc raises
    its mmap threshold after the first large free (up to 32 MB), after which those temporaries come from the heap
    and fragment it: ResNet50's conversion peaked 15 MB higher. A fixed threshold stops that (glibc only)."""
    from .glibc import M_MMAP_THRESHOLD, mallopt

    mallopt(M_MMAP_THRESHOLD, 128 * 1024)


def parse_input_shapes(values: tuple[str, ...]) -> list[list[int | None]] | None:
    """``--input-shape 224,224,3`` (repeat per input; ``?`` or ``None`` for an open dimension). Only commas:
    ``20x1`` was once read as ``20,1`` without a word, a spelling the help never named."""
    if not values:
        return None
    shapes = []
    for value in values:
        dims: list[int | None] = []
        if "x" in value.lower():
            raise Tf2TorchError(f"--input-shape {value!r}: separate dimensions with commas, e.g. "
                                f"{value.lower().replace('x', ',')}")
        for part in value.split(","):
            part = part.strip()
            if part in ("?", "None", "none", ""):
                dims.append(None)
            elif part.isdigit():
                dims.append(int(part))
            else:
                raise Tf2TorchError(f"--input-shape {value!r}: expected integers separated by commas, e.g. 224,224,3")
        shapes.append(dims)
    return shapes


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tf2torch")
def main() -> None:
    """Convert TensorFlow/Keras models (Keras .h5 and .keras, SavedModel directories, TF1 checkpoints, frozen .pb
    graphs) into PyTorch modules (.pt, or standalone Python, .pt2 and .onnx)."""


def run() -> None:
    """The process entry point (``tf2torch``, ``python -m tf2torch``): ``main``, then a quick exit. Tearing down an
    interpreter that imported torch takes half a second of freeing objects that the OS reclaims anyway; once the
    command has finished (output written, files closed) the exit handlers run and the process ends.

    SIGTERM and SIGHUP end the command as Ctrl-C does, through the exit handlers (which stop any reader process,
    ``readers/watchdog.py``), not by the default action that skips them; each of the three is also told to the
    watchdog, which stops waiting for a reader even where the exception was swallowed. TensorFlow's C++ logging
    is set to fatal only (level 3) before anything can import it (``quiet.py`` holds back what it prints
    regardless)."""
    import signal

    for number, default in ((signal.SIGINT, signal.default_int_handler), (signal.SIGTERM, signal.SIG_DFL),
                            (getattr(signal, "SIGHUP", None), signal.SIG_DFL)):
        if number is not None and signal.getsignal(number) is default:
            signal.signal(number, _on_signal)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        main.main(standalone_mode=True)
        code = 0
    except SystemExit as exc:
        if not (exc.code is None or isinstance(exc.code, int)):
            raise
        code = exc.code or 0
    sys.stdout.flush()
    sys.stderr.flush()
    import atexit

    atexit._run_exitfuncs()
    os._exit(code)


def _on_signal(number: int, frame: Any) -> None:
    """Ctrl-C raises ``KeyboardInterrupt`` as Python's own handler does, SIGTERM and SIGHUP ``SystemExit``; the
    watchdog, if loaded (it forks the readers), remembers the signal."""
    import signal

    watchdog = sys.modules.get("tf2torch.readers.watchdog")
    if watchdog is not None:
        watchdog.interrupted(number)
    if number == signal.SIGINT:
        raise KeyboardInterrupt
    raise SystemExit(128 + number)


REPORT_HELP = "Write a report: .json (for CI), .md (for a pull request) or .html (for people); repeatable."


def tf_graph_options(inputs_flag: str = "--inputs", outputs_flag: str = "--outputs"
                     ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Options for TensorFlow graphs (SavedModel, TF1 checkpoint, frozen .pb)."""
    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        options = [
            click.option("--signature", default=None, help="SavedModel signature [serving_default]."),
            click.option(inputs_flag, "tf_inputs", multiple=True,
                         help="TF graphs: input tensor names (comma-separated or repeated) [the signature's, or "
                              "the placeholders on the path]."),
            click.option(outputs_flag, "tf_outputs", multiple=True,
                         help="TF graphs: output tensor names [the signature's, or the sinks with a batch axis]."),
            click.option("--constant", "constants", multiple=True, metavar="NAME=VALUE",
                         help="TF graphs: feed a placeholder a fixed value (JSON), e.g. is_training=false; "
                              "repeatable."),
        ]
        for option in reversed(options):
            fn = option(fn)
        return fn
    return decorate


def tf_options_from(signature: str | None, tf_inputs: tuple[str, ...], tf_outputs: tuple[str, ...],
                    constants: tuple[str, ...]) -> dict[str, Any]:
    from .readers import parse_constant

    def names(values: tuple[str, ...]) -> list[str] | None:
        out = [n.strip() for v in values for n in v.split(",") if n.strip()]
        return out or None

    return {"signature": signature, "inputs": names(tf_inputs), "outputs": names(tf_outputs),
            "constants": dict(parse_constant(c) for c in constants) or None}


def verify_options(fn: Callable[..., Any], dtype_flag: str = "--verify-dtype") -> Callable[..., Any]:
    """Options shared by ``verify`` and ``convert --verify``."""
    options = [
        click.option("--report", "reports", multiple=True, type=click.Path(dir_okay=False), help=REPORT_HELP),
        click.option("--rtol", type=float, default=None,
                     help="Relative tolerance against each layer's output scale [float32: 1e-5, float64: 1e-10]."),
        click.option("--atol", type=float, default=None, help="Absolute tolerance [0]."),
        click.option(dtype_flag, "verify_dtype", type=click.Choice(["float32", "float64", "both"]), default="float32",
                     show_default=True,
                     help="Precision of both sides when verifying; 'both' judges float32 and tells round-off from "
                          "a semantic mismatch with a float64 run."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


@main.command()
@click.argument("source", type=click.Path(dir_okay=True))
@click.argument("output", type=click.Path(dir_okay=True))
@click.option("--emit", "emit_kinds", multiple=True, type=click.Choice(["python", "pt2", "onnx"]),
              help="Write OUTPUT as a directory: python (model.py, runtime.py, model.safetensors), pt2 "
                   "(torch.export), onnx; repeatable.")
@click.option("--force", is_flag=True, help="With --emit: overwrite the files an earlier conversion wrote there.")
@click.option("--keep-layout", is_flag=True, help="Take and return tensors exactly in Keras's layout (NHWC).")
@click.option("--input-shape", "input_shape", multiple=True,
              help="Shape of an input without the batch axis, in Keras's layout (channels last), e.g. 224,224,3; "
                   "repeat for several inputs.")
@click.option("--dtype", "model_dtype", type=click.Choice(["float32", "float64"]), default=None,
              help="Floating dtype of the converted model [default: the model's own: float64 layers stay float64, "
                   "mixed precision becomes float32]")
@click.option("--verify", "run_verify", is_flag=True,
              help="Compare every layer with Keras after converting; exit 1 on a mismatch.")
@click.option("--optimize", is_flag=True,
              help="Inference only: fold batch norms and input scaling into convolutions, drop no-ops, "
                   "channels_last weights.")
@click.option("--flip-theano-kernels", is_flag=True,
              help="A .h5 trained with Keras's Theano backend: flip its convolution kernels as Keras 2.0-2.3 did on "
                   "loading (the model as trained; today's Keras runs them unflipped).")
@click.option("--dequantize", is_flag=True,
              help="A quantized .tflite (int8/uint8): convert it to a float model with its weights dequantized "
                   "(refused by default; it then differs from the quantized model by the rounding).")
@verify_options
@tf_graph_options()
@friendly_errors
def convert(source: str, output: str, emit_kinds: tuple[str, ...], force: bool, keep_layout: bool,
            input_shape: tuple[str, ...],
            model_dtype: str | None, run_verify: bool, optimize: bool, flip_theano_kernels: bool, dequantize: bool,
            reports: tuple[str, ...], rtol: float | None, atol: float | None, verify_dtype: str,
            signature: str | None, tf_inputs: tuple[str, ...], tf_outputs: tuple[str, ...],
            constants: tuple[str, ...]) -> None:
    """Convert SOURCE (.h5, .keras, a SavedModel directory, a TF checkpoint with its .meta, a frozen .pb) into a
    safe PyTorch file OUTPUT (.pt; .onnx and .pt2 write those formats), or with --emit into the directory OUTPUT
    (standalone Python, torch.export, ONNX)."""
    import warnings

    from . import readers

    single_kind = output_kind(output, emit_kinds, force)
    readers.prefetch(source)  # the file's structure is read in a child process while torch is imported
    from . import api
    from .errors import ConversionNotice

    if reports and not run_verify:
        raise click.UsageError("--report needs --verify")
    check_report_paths(reports)
    return_freed_memory_to_the_os()
    tf_options = tf_options_from(signature, tf_inputs, tf_outputs, constants)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConversionNotice)
        module = api.convert(source, layout="keras" if keep_layout else "channels_first",
                             input_shapes=parse_input_shapes(input_shape), dtype=model_dtype, optimize=optimize,
                             flip_theano_kernels=flip_theano_kernels, dequantize=dequantize, **tf_options)
    for warning in caught:
        if issubclass(warning.category, ConversionNotice):
            click.echo(f"notice: {_one_line(str(warning.message))}", err=True)
    if emit_kinds:
        from .emit import emit

        written = emit(module, output, tuple(dict.fromkeys(emit_kinds)))
        output = f"{output}/ ({', '.join(p.name for p in written)})"
    elif single_kind is not None:
        write_single_file(module, output, single_kind)
    else:
        api.save(module, output)
    n_weights = sum(t.numel() for name, t in module.state_dict().items()  # what Keras counts as parameters
                    if not name.endswith("num_batches_tracked"))
    click.echo(f"converted {source} -> {output} ({n_weights:,} weights, "
               f"layout {'keras' if keep_layout else 'channels_first'})")
    if run_verify:
        report = run_verification(source, module, reports=reports, rtol=rtol, atol=atol, dtype=verify_dtype,
                                  input_shapes=parse_input_shapes(input_shape), quiet=True, tf_options=tf_options)
        sys.exit(0 if report.ok else 1)


SINGLE_FILE_KINDS = {".onnx": "onnx", ".pt2": "pt2"}
NOT_AN_OUTPUT = (".h5", ".hdf5", ".keras", ".pb", ".pbtxt", ".meta", ".index", ".tflite", ".py", ".safetensors",
                 ".json", ".npz", ".npy")


def output_kind(output: str, emit_kinds: tuple[str, ...], force: bool) -> str | None:
    """What OUTPUT will be, checked before converting: None for a ``.pt`` file, ``onnx`` / ``pt2`` for a single
    file of that format (``convert model.h5 out.onnx`` once wrote a ``.pt`` zip named ``.onnx``). Refused: an
    existing directory without --emit (was an IsADirectoryError, "a tf2torch bug"), a suffix of another format,
    and --emit over files already there without --force (an edited model.py was overwritten)."""
    path = os.path.abspath(output)
    suffix = os.path.splitext(path)[1].lower()
    if emit_kinds:
        existing = [name for name in emitted_names(emit_kinds) if os.path.lexists(os.path.join(path, name))]
        if existing and not force:
            raise Tf2TorchError(f"{output}: already holds {', '.join(existing)}; tf2torch does not overwrite them "
                                "(they may have been edited): choose another directory, or add --force")
        return None
    if os.path.isdir(path):
        raise Tf2TorchError(f"{output}: is a directory; without --emit OUTPUT is a file (e.g. "
                            f"{os.path.join(output, 'model.pt')}), or add --emit python, pt2 or onnx to write into it")
    if suffix in NOT_AN_OUTPUT:
        raise Tf2TorchError(f"{output}: tf2torch does not write {suffix} files; OUTPUT is a .pt (or .pth) file, a "
                            ".onnx or .pt2 file, or a directory with --emit python")
    return SINGLE_FILE_KINDS.get(suffix)


def emitted_names(kinds: tuple[str, ...]) -> list[str]:
    """The files ``--emit`` writes for ``kinds``."""
    from .emit import emitted_files

    return emitted_files(kinds)


def write_single_file(module: Any, output: str, kind: str) -> None:
    """OUTPUT as one ``.onnx`` or ``.pt2`` file: emitted into a temporary directory beside it, then moved into
    place, so a failure leaves nothing behind."""
    import shutil
    import tempfile

    from .emit import emit

    parent = os.path.dirname(os.path.abspath(output))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(output)}.", suffix=".partial", dir=parent)
    try:
        (written,) = emit(module, os.path.join(tmp, "out"), (kind,))
        os.replace(written, output)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@main.command()
@click.argument("source", type=click.Path(dir_okay=True))
@click.argument("converted", required=False, type=click.Path(dir_okay=False))
@click.option("--input-data", "input_data", type=click.Path(dir_okay=False),
              help="A .npz (one array per input name, or arr_0, arr_1, ...) or .npy file in Keras layout, with the "
                   "batch axis. Default: seeded random inputs (open dimensions at convert's stand-in size).")
@click.option("--input-shape", "input_shape", multiple=True,
              help="Fix open dimensions of an input (without the batch axis), e.g. 128,? ; repeat per input.")
@click.option("--batch-size", type=click.IntRange(min=1), default=2, show_default=True,
              help="Batch size of the random inputs.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random inputs.")
@click.option("--quiet", "-q", is_flag=True, help="Print the verdict and the first failing layer calls only.")
@click.option("--dequantize", is_flag=True,
              help="A quantized .tflite (int8/uint8): convert it to a float model with its weights dequantized "
                   "(refused by default; it then differs from the quantized model by the rounding).")
@verify_options
@tf_graph_options()
@click.option("--dtype", "old_dtype", hidden=True, type=click.Choice(["float32", "float64", "both"]), default=None)
@click.option("--input-tensors", "old_inputs", hidden=True, multiple=True)
@click.option("--output-tensors", "old_outputs", hidden=True, multiple=True)
@friendly_errors
def verify(source: str, converted: str | None, input_data: str | None, input_shape: tuple[str, ...],
           batch_size: int, seed: int, quiet: bool, dequantize: bool, reports: tuple[str, ...], rtol: float | None,
           atol: float | None, verify_dtype: str, signature: str | None, tf_inputs: tuple[str, ...],
           tf_outputs: tuple[str, ...], constants: tuple[str, ...], old_dtype: str | None,
           old_inputs: tuple[str, ...], old_outputs: tuple[str, ...]) -> None:
    """Run SOURCE with Keras and its conversion (CONVERTED .pt, or converted now) on the same inputs and compare
    every layer's output. Exit 0 when all match, 1 on a mismatch, 2 on bad usage or input."""
    from . import readers

    readers.prefetch(source)  # the file's structure is read in a child process while torch and Keras are imported
    check_report_paths(reports)
    input_data, tf_inputs, tf_outputs, verify_dtype = old_spellings(
        input_data, tf_inputs + old_inputs, tf_outputs + old_outputs, old_dtype or verify_dtype,
        bool(old_inputs or old_outputs), old_dtype is not None)
    model: Any = converted
    if converted is not None and not os.path.exists(converted):
        raise Tf2TorchError(f"{converted}: no such file")
    report = run_verification(source, model, reports=reports, rtol=rtol, atol=atol, dtype=verify_dtype,
                              input_shapes=parse_input_shapes(input_shape), inputs=input_data,
                              batch_size=batch_size, seed=seed, quiet=quiet,
                              tf_options={**tf_options_from(signature, tf_inputs, tf_outputs, constants),
                                          **({"dequantize": True} if dequantize else {})})
    sys.exit(0 if report.ok else 1)


def old_spellings(input_data: str | None, tf_inputs: tuple[str, ...], tf_outputs: tuple[str, ...],
                  verify_dtype: str, old_tensors: bool, old_dtype: bool
                  ) -> tuple[str | None, tuple[str, ...], tuple[str, ...], str]:
    """One meaning per flag across commands (issue #20): ``--inputs``/``--outputs`` name TF tensors and
    ``--dtype`` is the converted model's dtype, as in ``convert``. ``verify``'s old spellings still work, each with
    a deprecation line: ``--inputs x.npz`` (now ``--input-data``), ``--input-tensors``/``--output-tensors`` (now
    ``--inputs``/``--outputs``) and ``--dtype`` (now ``--verify-dtype``)."""
    files = [v for v in tf_inputs if v.lower().endswith((".npz", ".npy"))]
    if files:
        if input_data is not None or len(files) > 1:
            raise click.UsageError("give one array file, with --input-data")
        deprecated("--inputs FILE.npz", "--input-data FILE.npz (--inputs names TF input tensors, as in convert)")
        input_data, tf_inputs = files[0], tuple(v for v in tf_inputs if v not in files)
    if old_tensors:
        deprecated("--input-tensors / --output-tensors", "--inputs / --outputs")
    if old_dtype:
        deprecated("verify --dtype", "--verify-dtype (--dtype is the converted model's dtype, as in convert)")
    return input_data, tf_inputs, tf_outputs, verify_dtype


def deprecated(old: str, new: str) -> None:
    click.echo(f"deprecated: {old} is now {new}; the old spelling will be removed", err=True)


def check_report_paths(reports: tuple[str, ...]) -> None:
    from .verify import report_kind

    for path in reports:
        report_kind(path)


def run_verification(source: str, model: Any, *, reports: tuple[str, ...], quiet: bool, **options: Any) -> Any:
    """Verify with a progress bar on stderr, print the table (or only failures), write the reports."""
    from .verify import verify as verify_model

    if sys.stderr.isatty():
        with click.progressbar(length=1, label="verifying", file=sys.stderr, show_pos=True, show_eta=False,
                               item_show_func=lambda s: s) as bar:
            def progress(done: int, total: int, what: str) -> None:
                bar.length = total
                bar.update(done - bar.pos, what[-40:])

            report = verify_model(source, model, progress=progress, **options)
    else:
        report = verify_model(source, model, **options)
    color = sys.stdout.isatty()
    if quiet:
        click.echo(report.quiet_text(), nl=False)
    else:
        click.echo(report.to_text(color=color), nl=False)
    for path in reports:
        report.save(path)
        click.echo(f"report written to {path}")
    return report


@main.command()
@click.argument("source", type=click.Path(dir_okay=True))
@tf_graph_options()
@friendly_errors
def inspect(source: str, signature: str | None, tf_inputs: tuple[str, ...], tf_outputs: tuple[str, ...],
            constants: tuple[str, ...]) -> None:
    """List SOURCE's layers (or a TF graph's ops): class, calls, parameters, and the converter each uses;
    for TF graphs, the placeholders first (what --constant can fix)."""
    import numpy as np

    from . import api, registry
    from .readers import file_kind, list_placeholders

    tf_options = tf_options_from(signature, tf_inputs, tf_outputs, constants)
    if file_kind(source) in ("savedmodel", "checkpoint", "graphdef"):
        for row in list_placeholders(source, tf_options):
            click.echo(row)
    with api.read_model(source, tf_options) as graph:
        written_by = (f"TensorFlow {graph.keras_version[3:]} graph" if graph.keras_version.startswith("tf-")
                      else f"Keras {graph.keras_version}")
        if graph.trained_with:
            written_by += f", {graph.trained_with} backend"
        click.echo(f"{graph.name}: {written_by} ({graph.source_format}), "
                   f"{len(graph.layers)} layers, {len(graph.nodes)} calls")
        for spec in graph.input_specs:
            shape = list(spec.shape) if spec.declared else "not saved (convert with --input-shape)"
            click.echo(f"  input {spec.name}: shape {shape} {spec.dtype}")
        if graph.output_names:
            click.echo(f"  outputs (in order): {', '.join(graph.output_names)}")
        calls: dict[str, int] = {}
        for node in graph.nodes:
            calls[node.layer] = calls.get(node.layer, 0) + 1
        width = max(len(k) for k in graph.layers)
        missing = 0
        for key, layer in graph.layers.items():
            params = sum(int(np.prod(w.shape)) for w in layer.weights)
            used = "input" if layer.class_name == "InputLayer" else registry.describe(layer.class_name)
            missing += used is None
            click.echo(f"  {key:<{width}}  {layer.class_name:<24} calls={calls.get(key, 0)}  "
                       f"params={params:<10,} {used or 'NO CONVERTER'}")
        total = sum(int(np.prod(w.shape)) for layer in graph.layers.values() for w in layer.weights)
        if graph.source_format == "tflite":
            click.echo(operator_counts(graph))
        click.echo(f"total parameters: {total:,}; layers without a converter: {missing}")


def operator_counts(graph: Any) -> str:
    """A ``.tflite`` file's operators with their counts, most used first (``CONV_2D x 12``)."""
    counts: dict[str, int] = {}
    for layer in graph.layers.values():
        if layer.class_name != "InputLayer":
            name = layer.class_name.split(">", 1)[-1]
            counts[name] = counts.get(name, 0) + 1
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return f"operators ({sum(counts.values())}, {len(counts)} kinds): " + \
        ", ".join(f"{name} x {n}" for name, n in ranked)


transfer_command.callback = friendly_errors(transfer_command.callback)  # tf2torch/transfer/command.py
main.add_command(transfer_command)


@main.command()
def layers() -> None:
    """List the Keras layer classes tf2torch converts."""
    from . import registry

    for name in registry.spellings("keras"):
        fn = registry.lookup(name)
        click.echo(f"{name:<32} {fn.__module__.rsplit('.', 1)[-1]}.{fn.__name__}")
