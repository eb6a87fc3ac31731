"""Keras 3 ``STFTSpectrogram`` ([K3] ``layers/preprocessing/stft_spectrogram.py``).

Trap: it is no FFT but Keras's own strided convolution with stored real/imaginary DFT kernels, so the stored
kernels, not ``window``/``scaling``/``periodic``/``fft_length``, decide the numbers (those only initialized the
kernels, which Keras can train); ``frame_step=None`` means ``frame_length // 2``; ``padding='same'`` is TF's
asymmetric one. See ``tf2torch/nn/spectrogram.py`` for the modes.
"""

from __future__ import annotations

import numpy as np

from ..layout import KERAS
from ..nn.spectrogram import STFTSpectrogram
from .registry import NO_EFFECT, Converted, LayerSpec, as_parameter, converter

MODES = ("log", "magnitude", "psd", "real", "imag", "angle", "stft")


def dft_kernel_to_conv(kernel: np.ndarray) -> np.ndarray:
    """A stored (frame_length, 1, frequencies) kernel → ``conv1d`` weights (frequencies, 1, frame_length)."""
    return np.ascontiguousarray(kernel.transpose(2, 1, 0))


@converter("STFTSpectrogram", defaults={"window": NO_EFFECT, "periodic": NO_EFFECT, "scaling": NO_EFFECT,
                                        "fft_length": NO_EFFECT})  # all four are in the stored kernels
def convert_stft_spectrogram(spec: LayerSpec) -> Converted:
    cfg = spec.config
    mode = cfg.get("mode", "log")
    if mode not in MODES:
        spec.fail(f"mode {mode!r} is not supported")
    padding = cfg.get("padding", "valid")
    if padding not in ("valid", "same"):
        spec.fail(f"padding {padding!r} is not supported")
    frame_length = int(cfg.get("frame_length", 256))
    frame_step = int(cfg.get("frame_step") or frame_length // 2)
    names = [w.name.split("/")[-1].split(":")[0] for w in spec.weight_handles]
    wanted = {"real": ["real_kernel"], "imag": ["imag_kernel"]}.get(mode, ["real_kernel", "imag_kernel"])
    arrays = spec.weights(expected=len(wanted))
    # ``.h5`` names them; ``.keras`` stores ``vars/0``, ``vars/1`` in build order (real, then imaginary)
    stored = dict(zip(names if sorted(names) == sorted(wanted) else wanted, arrays))
    frequencies = next(iter(stored.values())).shape[-1]
    spec.check_shapes(list(stored.values()), [(frame_length, 1, frequencies)] * len(stored), list(stored))
    module = STFTSpectrogram(frame_length, frequencies, mode, frame_step, padding, bool(cfg.get("expand_dims", False)),
                             cfg.get("data_format", "channels_last") == "channels_first")
    for name, kernel in stored.items():
        setattr(module, name.replace("kernel", "weight"), as_parameter(dft_kernel_to_conv(kernel)))
    return Converted(module, input_layouts=KERAS, output_layouts=KERAS)
