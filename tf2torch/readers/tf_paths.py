"""Where the TensorFlow formats live on disk: SavedModel directories, TF1 checkpoints, frozen GraphDefs.

Pure file-system logic (no TensorFlow): telling the kind of a path and resolving a checkpoint prefix from the
forms people hand over — ``model.ckpt``, ``model.ckpt-1234``, a directory with a ``checkpoint`` state file whose
paths may be absolute on another machine, a directory that *is* the prefix (files named ``.index``, ``.meta``),
or ``model.ckpt`` standing for its latest ``model.ckpt-N``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..errors import ModelFileError

INSTALL_HINT = "pip install -c constraints.txt -e '.[tf]' in the tf2torch clone (tf2torch is not on PyPI)"
STATE_LINE = re.compile(r'^\s*model_checkpoint_path\s*:\s*"(.*)"\s*$')
STEP = re.compile(r"-(\d+)$")


def import_tensorflow() -> Any:
    """TensorFlow, imported only for the TensorFlow formats, without its import-time log lines
    (``quiet.import_quietly``); one clear line when it is missing."""
    from ..quiet import import_quietly

    try:
        tf = import_quietly("tensorflow")
    except ImportError:
        raise ModelFileError("reading SavedModels, TF checkpoints and frozen graphs needs TensorFlow: "
                             f"{INSTALL_HINT}") from None
    return tf


def is_saved_model_dir(p: Path) -> bool:
    return p.is_dir() and ((p / "saved_model.pb").exists() or (p / "saved_model.pbtxt").exists())


def _has_checkpoint(prefix: str) -> bool:
    return Path(prefix + ".index").exists()


def _latest_step(prefix: str) -> str | None:
    """``model.ckpt`` → ``model.ckpt-<largest N>`` when only step-numbered files exist."""
    p = Path(prefix)
    parent = p.parent if p.name else p
    stem = p.name
    steps = []
    for index in parent.glob(f"{glob_escape(stem)}-*.index"):
        match = STEP.search(index.name[: -len(".index")])
        if match:
            steps.append((int(match.group(1)), str(index)[: -len(".index")]))
    return max(steps)[1] if steps else None


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def checkpoint_prefix(path: str | Path) -> str | None:
    """The checkpoint prefix ``path`` stands for, or None when it is not a TF1/TF2 checkpoint."""
    text = str(path)
    p = Path(text)
    if text.endswith((".index", ".meta")) and p.is_file():
        text = text.rsplit(".", 1)[0]
        p = Path(text)
    if re.search(r"\.data-\d+-of-\d+$", text) and p.is_file():
        text = text.rsplit(".data-", 1)[0]
        p = Path(text)
    if not p.is_dir():
        if _has_checkpoint(text):
            return text
        return _latest_step(text)
    state = p / "checkpoint"
    if state.is_file():
        named = _state_file_prefix(state)
        if named is not None:
            # Paths in the state file may be absolute on the machine that wrote it: resolve by name, here.
            for candidate in (named, str(p / Path(named).name)):
                if _has_checkpoint(candidate):
                    return candidate
    if (p / ".index").exists():  # the directory is the prefix itself (``model_dir/.index``)
        return str(p) + "/"
    indexes = sorted(p.glob("*.index"))
    if len(indexes) == 1:
        return str(indexes[0])[: -len(".index")]
    stepped = [i for i in indexes if STEP.search(i.name[: -len(".index")])]
    if stepped:
        return str(max(stepped, key=lambda i: int(STEP.search(i.name[: -len(".index")]).group(1))))[:-6]
    if indexes:
        names = ", ".join(i.name[: -len(".index")] for i in indexes)
        raise ModelFileError(f"{p}: several checkpoints ({names}); name one as DIR/PREFIX")
    return None


def _state_file_prefix(state: Path) -> str | None:
    try:
        lines = state.read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        match = STATE_LINE.match(line)
        if match:
            named = match.group(1)
            return named if Path(named).is_absolute() else str(state.parent / named)
    return None


def tf_kind(p: Path) -> str | None:
    """``savedmodel``, ``checkpoint`` or ``graphdef`` for the TensorFlow formats; None otherwise."""
    if is_saved_model_dir(p):
        return "savedmodel"
    if p.is_file() and p.name in ("saved_model.pb", "saved_model.pbtxt"):
        return "savedmodel"
    if checkpoint_prefix(p) is not None:
        return "checkpoint"
    if p.is_file() and p.suffix in (".pb", ".pbtxt"):
        return "graphdef"
    return None
