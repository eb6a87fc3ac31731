"""Keras 3 ``STFTSpectrogram``: a short-time Fourier transform computed as Keras computes it, a strided 1-D
convolution of each channel with the stored real and imaginary DFT kernels, then the output ``mode``.

The window, scaling and FFT length are in the stored kernels ((frame_length, 1, fft_length // 2 + 1), made by
Keras's ``STFT`` initializer, and trainable in Keras); ``padding='same'`` is TF's, more after than before. ``log``
and ``magnitude`` floor the power and the magnitude at Keras's epsilon 1e-7; ``psd`` doubles every frequency bin
but the first and the last. Tensors are in Keras's layout.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .padding import tf_same_padding

EPSILON = 1e-7  # keras.backend.epsilon()


class STFTSpectrogram(nn.Module):
    def __init__(self, frame_length: int, frequencies: int, mode: str = "log", frame_step: int = 128,
                 padding: str = "valid", expand_dims: bool = False, channels_first: bool = False):
        super().__init__()
        self.frame_length, self.frequencies = int(frame_length), int(frequencies)
        self.mode, self.frame_step, self.padding = mode, int(frame_step), padding
        self.expand_dims, self.channels_first = bool(expand_dims), bool(channels_first)
        shape = (self.frequencies, 1, self.frame_length)  # conv1d weights
        self.real_weight = nn.Parameter(torch.empty(shape)) if mode != "imag" else None
        self.imag_weight = nn.Parameter(torch.empty(shape)) if mode != "real" else None

    def transform(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """(B, C, T) → (B, C, frequencies, frames)."""
        batch, channels, steps = x.shape
        signal = x.reshape(batch * channels, 1, steps)
        if self.padding == "same":
            signal = F.pad(signal, tf_same_padding(steps, self.frame_length, self.frame_step))
        out = F.conv1d(signal, weight.to(x.dtype), stride=self.frame_step)
        return out.reshape(batch, channels, self.frequencies, -1)

    def arrange(self, out: torch.Tensor) -> torch.Tensor:
        """(B, C, F, frames) → Keras's output layout."""
        batch, channels, frequencies, frames = out.shape
        if self.expand_dims:
            return out.permute(0, 3, 2, 1) if not self.channels_first else out.permute(0, 1, 3, 2)
        out = out.reshape(batch, channels * frequencies, frames)
        return out if self.channels_first else out.transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.channels_first:
            x = x.transpose(1, 2)
        real = self.transform(x, self.real_weight) if self.real_weight is not None else None
        imag = self.transform(x, self.imag_weight) if self.imag_weight is not None else None
        if self.mode == "real":
            return self.arrange(real)
        if self.mode == "imag":
            return self.arrange(imag)
        if self.mode == "angle":
            return self.arrange(torch.atan2(imag, real))
        if self.mode == "stft":
            return self.arrange(torch.cat([real, imag], dim=2))
        power = real.square() + imag.square()
        if self.mode == "psd":
            return self.arrange(power + F.pad(power[:, :, 1:-1, :], (0, 0, 1, 1)))
        magnitude = self.arrange(torch.sqrt(torch.clamp(power, min=EPSILON)))
        return magnitude if self.mode == "magnitude" else torch.log(torch.clamp(magnitude, min=EPSILON))

    def extra_repr(self) -> str:
        return (f"frame_length={self.frame_length}, frequencies={self.frequencies}, mode={self.mode!r}, "
                f"frame_step={self.frame_step}, padding={self.padding!r}, expand_dims={self.expand_dims}, "
                f"channels_first={self.channels_first}")
