"""Errors meant for the user: each message says what went wrong, where, and what to do.

The CLI prints ``str(error)`` as one line and exits with code 2; it never shows a traceback for these.
"""

from __future__ import annotations


class Tf2TorchError(Exception):
    """Base class of every error tf2torch raises on purpose."""


class ModelFileError(Tf2TorchError):
    """The model file is missing, of another kind, truncated, corrupted or has a config we cannot parse."""


class UnsupportedLayerError(Tf2TorchError):
    """One or more layers have no converter; lists every one of them at once. Entries of one class (and reason)
    are grouped with a count and one example path: ConvNeXt as a SavedModel listed 36 entries in one 8 KB line."""

    def __init__(self, layers: list[tuple[str, str]], reasons: dict[str, str] | None = None,
                 message: str | None = None):
        self.layers = layers
        if message is not None:
            super().__init__(message)
            return
        reasons = reasons or {}
        groups: dict[tuple[str, str | None], list[str]] = {}
        for name, class_name in layers:
            groups.setdefault((class_name, reasons.get(name)), []).append(name)
        parts = []
        for (class_name, reason), names in groups.items():
            kind = "operation " if _is_op(class_name) else ""
            what = f"{kind}{class_name}{': ' + reason if reason else ''}"
            parts.append(f"{names[0]} ({what})" if len(names) == 1 else
                         f"{len(names)} x {what} (e.g. {shorten_path(names[0])})")
        what = "layer(s) and operation(s)" if any(_is_op(c) for _, c in layers) else "layer(s)"
        super().__init__(
            f"{len(layers)} {what} cannot be converted: {(', ' if len(parts) == len(layers) else '; ').join(parts)}. "
            "Register a converter with @tf2torch.register('ClassName') to add support."
        )


def shorten_path(path: str, limit: int = 80) -> str:
    """A node path short enough for an error line: its first segment and its last two."""
    segments = path.split("/")
    if len(path) <= limit or len(segments) <= 3:
        return path if len(path) <= limit else path[: limit // 2] + "..." + path[-limit // 2:]
    return "/".join([segments[0], "...", *segments[-2:]])


def _is_op(class_name: str) -> bool:
    """Op nodes go by a spelling under ``keras.ops.`` or ``tf.`` (``tf.math.cumsum``); a user's own class is
    spelled ``module.Name`` (``registry.is_op_key``)."""
    return class_name.startswith(("keras.ops.", "tf."))


class ConversionError(Tf2TorchError):
    """A supported layer has a configuration the converter cannot reproduce exactly."""

    def __init__(self, layer: str, class_name: str, message: str):
        self.layer = layer
        self.class_name = class_name
        super().__init__(f"layer {layer} ({class_name}): {message}")


class ConversionNotice(UserWarning):
    """A conversion that is exact up to a documented choice (mixed precision computed in float32); the CLI prints
    it as one ``notice:`` line."""


class EmitError(Tf2TorchError):
    """A converted module cannot be written as standalone source or exported (names the layer and the reason)."""
