"""The one place that knows the Keras config dialects.

Keras 1/2 (standalone Keras 2.0-2.3, tf.keras 2.x) and Keras 3 write the model graph differently:
- Keras 2 ``inbound_nodes``: one list per call of ``[layer, node_index, tensor_index, kwargs]`` (Keras 1: three
  elements); Keras 3: ``{"args": [...], "kwargs": {...}}`` with tensors as ``__keras_tensor__`` objects.
- A nested Functional model's node indices start at 1 (its node 0 links its own inputs to outputs) in Keras 2
  refs and in both dialects' ``input_layers``/``output_layers``; Keras 3 ``args`` refs count from 0
  ([K3] ``models/functional.py`` ``serialize_node`` / ``get_config``).
- Sequential configs are a plain list of layers in Keras 2.0/2.1 and may lack an InputLayer.
- TF 2.4-era JSON encodes tuples as ``{"class_name": "__tuple__", "items": [...]}``.
Everything past this module sees one normalized form: a flattened ``KerasGraph``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import ModelFileError
from ..graph import InputSpec, KerasGraph, Layer, Node, TensorRef
from .keras_ops import KERAS3_OP_CLASSES
from .policy import MAX_NESTING

MODEL_CLASSES = {"Sequential", "Functional", "Model"}
ALL_OUTPUTS = -1  # TensorRef index: every output of the node (a Sequential's last layer)


@dataclass
class ModelTree:
    """A (possibly nested) model's layers in config order, for readers that attach weights positionally."""

    key: str
    class_name: str
    layers: list[tuple[str, str, "ModelTree | None"]] = field(default_factory=list)
    _index: dict[str, int] = field(default_factory=dict, repr=False)

    def find(self, key: str) -> tuple[str, str, "ModelTree | None"] | None:
        i = self._index.get(key)
        return self.layers[i] if i is not None else None

    def add(self, key: str, class_name: str, sub: "ModelTree | None" = None) -> None:
        """Add ``key`` (a dict lookup, not a scan: a model may have 100,000 layers); replace it if known."""
        if key in self._index:
            self.layers[self._index[key]] = (key, class_name, sub)
        else:
            self._index[key] = len(self.layers)
            self.layers.append((key, class_name, sub))


def normalize_value(value: Any) -> Any:
    """Decode dialect encodings inside config values: ``__tuple__``, Keras 3 function and dtype-policy objects;
    a nested object's class spelled by ``class_identity``."""
    if isinstance(value, list):
        return [normalize_value(v) for v in value]
    if not isinstance(value, dict):
        return value
    class_name = value.get("class_name")
    if class_name == "__tuple__":
        return [normalize_value(v) for v in value["items"]]
    if class_name == "function" and isinstance(value.get("config"), str):
        return value["config"]
    if class_name in ("DTypePolicy", "Policy", "FloatDTypePolicy") and isinstance(value.get("config"), dict):
        return value["config"].get("name")
    if isinstance(class_name, str) and not class_name.startswith("__"):
        # a nested serialized object (a wrapped layer, an RNN cell, an activation layer): spelled like a layer,
        # so a user's own ``LSTMCell`` inside ``RNN`` never reads as Keras's
        value = {**value, "class_name": class_identity(value)}
    return {k: normalize_value(v) for k, v in value.items()}


def is_model(layer_cfg: dict[str, Any]) -> bool:
    cfg = layer_cfg.get("config")
    return layer_cfg.get("class_name") in MODEL_CLASSES and (
        isinstance(cfg, list) or (isinstance(cfg, dict) and "layers" in cfg)
    )


def _shape_without_batch(cfg: dict[str, Any]) -> tuple[int | None, ...] | None:
    for key in ("batch_shape", "batch_input_shape"):
        if cfg.get(key) is not None:
            return _checked_shape(cfg[key], key)[1:]
    if cfg.get("input_shape") is not None:
        return _checked_shape(cfg["input_shape"], "input_shape")
    return None


def _checked_shape(value: Any, key: str) -> tuple[int | None, ...]:
    """A declared shape: a list of non-negative integers or None (open)."""
    if not isinstance(value, list) or not value and key != "input_shape":
        raise ModelFileError(f"{key} {value!r} is not a list of dimensions; the model config does not parse")
    dims = tuple(value)
    for d in dims:
        if d is not None and (isinstance(d, bool) or not isinstance(d, int) or d < 0):
            raise ModelFileError(f"{key} {value!r}: dimension {d!r} is not a non-negative integer or null; the "
                                 "model config does not parse")
    return dims


class _GraphBuilder:
    def __init__(self) -> None:
        self.layers: dict[str, Layer] = {}
        self.nodes: list[Node] = []
        self.input_specs: list[InputSpec] = []
        self.containers: set[str] = set()  # keys of nested models: the "/" after one is nesting, not a name
        self.depth = 0

    # -- layers -----------------------------------------------------------------------------------------
    def add_layer(self, key: str, layer_cfg: dict[str, Any]) -> None:
        if key in self.layers:
            return
        config = normalize_value(layer_cfg.get("config") or {})
        if not isinstance(config, dict):
            raise ModelFileError(f"layer {key}: config is not an object; the model config does not parse")
        class_name = layer_cfg.get("class_name")
        if not isinstance(class_name, str):
            raise ModelFileError(f"layer {key}: no class_name; the model config does not parse")
        self.layers[key] = Layer(key, op_spelling(layer_cfg) or class_identity(layer_cfg), config)

    # -- models -----------------------------------------------------------------------------------------
    def expand_model(self, model_cfg: dict[str, Any], layer_prefix: str, node_prefix: str,
                     bound: list[TensorRef] | None, tree: ModelTree) -> list[TensorRef]:
        """Add the nodes of one model call; ``bound`` are the outer tensors fed to its inputs (None: top level)."""
        if self.depth >= MAX_NESTING:
            raise ModelFileError(f"nested model {layer_prefix.rstrip('/')[:200]}: models nested more than "
                                 f"{MAX_NESTING} deep; tf2torch reads at most {MAX_NESTING} levels")
        cfg = model_cfg.get("config")
        self.depth += 1
        try:
            if model_cfg.get("class_name") == "Sequential" or isinstance(cfg, list):
                return self._expand_sequential(cfg, layer_prefix, node_prefix, bound, tree)
            return self._expand_functional(cfg, layer_prefix, node_prefix, bound, tree)
        finally:
            self.depth -= 1

    def _expand_sequential(self, cfg: Any, layer_prefix: str, node_prefix: str,
                           bound: list[TensorRef] | None, tree: ModelTree) -> list[TensorRef]:
        layer_cfgs = cfg if isinstance(cfg, list) else cfg.get("layers", [])
        if not layer_cfgs:
            raise ModelFileError("Sequential model has no layers; the model config does not parse")
        layer_cfgs = [dict(lc) for lc in layer_cfgs]
        for lc in layer_cfgs:
            lc.setdefault("name", (lc.get("config") or {}).get("name") if isinstance(lc.get("config"), dict) else None)
        current: list[TensorRef]
        if layer_cfgs[0].get("class_name") == "InputLayer":
            first, rest = layer_cfgs[0], layer_cfgs[1:]
            tree.add(layer_prefix + first["name"], "InputLayer")
            current = self._input(first["name"], normalize_value(first["config"]), layer_prefix, node_prefix, bound, 0)
        else:
            first_cfg = normalize_value(layer_cfgs[0].get("config") or {})
            name = f"{layer_cfgs[0]['name']}_input"
            spec_cfg = {"batch_input_shape": [None, *(_shape_without_batch(first_cfg) or ())],
                        "dtype": first_cfg.get("dtype") or "float32"}
            current = self._input(name, spec_cfg, layer_prefix, node_prefix, bound, 0,
                                  declared=_shape_without_batch(first_cfg) is not None)
            rest = layer_cfgs
        for lc in rest:
            current = self._call(lc, layer_prefix, node_prefix, 0, current, {}, {}, tree)
        return current

    def _expand_functional(self, cfg: dict[str, Any], layer_prefix: str, node_prefix: str,
                           bound: list[TensorRef] | None, tree: ModelTree) -> list[TensorRef]:
        layer_cfgs = {lc["name"]: lc for lc in cfg["layers"]}
        input_refs = _ref_list(cfg.get("input_layers"))
        output_refs = _ref_list(cfg.get("output_layers"))
        resolved: dict[tuple[str, int], list[TensorRef]] = {}
        for lc in cfg["layers"]:
            tree.add(layer_prefix + lc["name"], lc["class_name"])
        # bind inputs
        if bound is not None and len(bound) != len(input_refs):
            raise ModelFileError(f"nested model {layer_prefix.rstrip('/')}: called with {len(bound)} tensors, "
                                 f"has {len(input_refs)} inputs")
        for i, (name, _, _) in enumerate(input_refs):
            lc = layer_cfgs[name]
            resolved[(name, 0)] = self._input(name, normalize_value(lc["config"]), layer_prefix, node_prefix,
                                              bound, i)

        calls = _FunctionalCalls(self, layer_cfgs, layer_prefix, node_prefix, tree, resolved)
        self._dialect = _dialect_of(cfg["layers"])
        outputs = [t for ref in output_refs for t in calls.resolve_ref(ref, from_io_list=True)]
        # Calls not reachable from the outputs are not part of the model's computation; skip them.
        return outputs

    def _input(self, name: str, cfg: dict[str, Any], layer_prefix: str, node_prefix: str,
               bound: list[TensorRef] | None, position: int, declared: bool = True) -> list[TensorRef]:
        """An input; ``declared=False``: a Sequential whose first layer names no input shape (Keras 2.2.4 saved one
        built on its first call, e.g. astrorapid 0.2.17's model): its shape comes from ``--input-shape``."""
        if bound is not None:
            return [bound[position]]
        shape = _shape_without_batch(cfg)
        if shape is None:
            raise ModelFileError(f"input {name}: no shape in the config; the model config does not parse")
        dtype = cfg.get("dtype") or "float32"
        self.input_specs.append(InputSpec(name, tuple(shape), str(dtype), declared))
        key = layer_prefix + name
        self.layers[key] = Layer(key, "InputLayer", cfg)
        node_id = node_prefix + name
        self.nodes.append(Node(node_id, key))
        return [TensorRef(node_id, 0)]

    def _call(self, lc: dict[str, Any], layer_prefix: str, node_prefix: str, call: int,
              inputs: list[TensorRef], tensor_kwargs: dict[str, Any], kwargs: dict[str, Any],
              tree: ModelTree) -> list[TensorRef]:
        name = lc.get("name") or (lc.get("config") or {}).get("name")
        if not isinstance(name, str):
            raise ModelFileError("a layer has no name; the model config does not parse")
        node_id = node_prefix + name + (f":{call}" if call else "")
        if is_model(lc):
            self.containers.add(layer_prefix + name)
            sub = ModelTree(layer_prefix + name, lc["class_name"])
            known = tree.find(sub.key)
            if known is None or known[2] is None:
                tree.add(layer_prefix + name, lc["class_name"], sub)
            else:
                sub = ModelTree(sub.key, sub.class_name)  # later call of a shared nested model: tree known
            return self.expand_model(lc, layer_prefix + name + "/", node_id + "/", inputs, sub)
        inner = (lc.get("config") or {}).get("layer") if class_identity(lc) == "TimeDistributed" else None
        if isinstance(inner, dict) and is_model(inner):
            return self._expand_time_distributed(lc, inner, layer_prefix + name, node_id, inputs, tree)
        if tree.find(layer_prefix + name) is None:
            tree.add(layer_prefix + name, lc["class_name"])
        self.add_layer(layer_prefix + name, lc)
        self.nodes.append(Node(node_id, layer_prefix + name, list(inputs), dict(tensor_kwargs), kwargs))
        return [TensorRef(node_id, 0)]

    def _expand_time_distributed(self, lc: dict[str, Any], inner: dict[str, Any], key: str, node_id: str,
                                 inputs: list[TensorRef], tree: ModelTree) -> list[TensorRef]:
        """``TimeDistributed(model)``: fold time into the batch, run the inner model's layers (flattened like any
        nested model, so each uses its own converter), unfold. The inner layers are keyed ``<td>/<layer>``."""
        sub = ModelTree(key, inner["class_name"])
        self.containers.add(key)
        entry = tree.find(key)
        known = entry[2] if entry is not None else None
        if known is None:
            tree.add(key, "TimeDistributed", sub)
        for suffix, class_name in (("fold", "TimeDistributedFold"), ("unfold", "TimeDistributedUnfold")):
            self.layers.setdefault(f"{key}/{suffix}", Layer(f"{key}/{suffix}", class_name, {"name": suffix}))
        self.nodes.append(Node(f"{node_id}/fold", f"{key}/fold", [inputs[0]]))
        outputs = self.expand_model(inner, key + "/", node_id + "/", [TensorRef(f"{node_id}/fold", 0)],
                                    sub if known is None else ModelTree(key, inner["class_name"]))
        self.nodes.append(Node(f"{node_id}/unfold", f"{key}/unfold", [outputs[0], inputs[0]]))
        return [TensorRef(f"{node_id}/unfold", 0)]

    def _parse_call(self, call: Any, layer_cfgs: dict[str, Any]):
        """Return (positional refs, tensor kwarg refs, constant kwargs) of one serialized call."""
        args: list[tuple[str, int, int]] = []
        tensor_kwargs: dict[str, Any] = {}
        kwargs: dict[str, Any] = {}
        if isinstance(call, dict):  # Keras 3
            _collect_keras_tensors(call.get("args", []), args)
            template = _args_template(normalize_value(call.get("args", [])), [0])
            if _has_constant(template):
                kwargs["__args__"] = template  # Keras 3 ops keep constants among their arguments
            for key, value in (call.get("kwargs") or {}).items():
                found: list[tuple[str, int, int]] = []
                _collect_keras_tensors(value, found)
                if found:
                    tensor_kwargs[key] = found if isinstance(value, list) else found[0]
                elif value is not None:
                    kwargs[key] = normalize_value(value)
            return args, tensor_kwargs, kwargs
        if not isinstance(call, list):
            raise ModelFileError("an inbound node is neither a list nor an object; the model config does not parse")
        for entry in call:
            if not (isinstance(entry, list) and len(entry) >= 3 and isinstance(entry[0], str)):
                raise ModelFileError(f"an inbound node entry {entry!r} does not parse")
            args.append((entry[0], int(entry[1]), int(entry[2])))
            if len(entry) > 3 and isinstance(entry[3], dict):
                for key, value in entry[3].items():
                    if (isinstance(value, list) and len(value) >= 3 and isinstance(value[0], str)
                            and value[0] in layer_cfgs):
                        tensor_kwargs[key] = (value[0], int(value[1]), int(value[2]))
                    elif value is not None:
                        kwargs[key] = normalize_value(value)
        return args, tensor_kwargs, kwargs


class _FunctionalCalls:
    """The calls of one functional model's config (``_GraphBuilder._expand_functional``), each parsed once and
    resolved to IR tensors on demand: an explicit stack, not recursion, so a chain of 100,000 layers resolves."""

    def __init__(self, builder: "_GraphBuilder", layer_cfgs: dict[str, Any], layer_prefix: str, node_prefix: str,
                 tree: ModelTree, resolved: dict[tuple[str, int], list[TensorRef]]) -> None:
        self.builder = builder
        self.layer_cfgs = layer_cfgs
        self.layer_prefix = layer_prefix
        self.node_prefix = node_prefix
        self.tree = tree
        self.resolved = resolved
        self.in_progress: set[tuple[str, int]] = set()
        self.parsed: dict[tuple[str, int], Any] = {}

    def parse(self, key: tuple[str, int]) -> Any:
        """The serialized call ``key`` = (layer, index into its inbound_nodes), parsed once."""
        layer_cfgs, parsed = self.layer_cfgs, self.parsed
        if key not in parsed:
            name, call = key
            if name not in layer_cfgs:
                raise ModelFileError(f"the model config refers to a layer {name!r} that it does not define")
            calls = layer_cfgs[name].get("inbound_nodes") or []
            if call >= len(calls) or call < 0:
                raise ModelFileError(f"layer {name}: the config refers to call {call}, the layer has "
                                     f"{len(calls)}")
            if op_spelling(layer_cfgs[name]):
                parsed[key] = _parse_op_call(calls[call], layer_cfgs)
            else:
                parsed[key] = self.builder._parse_call(calls[call], layer_cfgs)
        return parsed[key]

    def dependency(self, ref: tuple[str, int, int]) -> tuple[str, int] | None:
        name, node_index, _ = ref
        lc = self.layer_cfgs.get(name)
        if lc is None or lc["class_name"] == "InputLayer":
            return None
        return (name, node_index - 1 if _starts_at_one(lc, self.builder._dialect, False) else node_index)

    def resolve(self, name: str, call: int) -> list[TensorRef]:
        """Outputs of call ``call`` (an index into the layer's serialized inbound_nodes) of ``name``; an explicit
        stack, not recursion, so a chain of 100,000 layers resolves."""
        resolved, in_progress = self.resolved, self.in_progress
        stack = [(name, call)]
        while stack:
            key = stack[-1]
            if key in resolved:
                stack.pop()
                continue
            args, tensor_kwargs, kwargs = self.parse(key)
            refs = list(args) + [x for r in tensor_kwargs.values() for x in (r if isinstance(r, list) else [r])]
            waiting = [d for d in map(self.dependency, refs) if d is not None and d not in resolved]
            if waiting:
                if key in in_progress:
                    raise ModelFileError(f"layer {key[0]}: the model config has a cycle")
                in_progress.add(key)
                for d in waiting:
                    if d in in_progress:
                        raise ModelFileError(f"layer {d[0]}: the model config has a cycle")
                stack.extend(reversed(waiting))
                continue
            inputs = [t for ref in args for t in self.resolve_ref(ref)]
            tkw = {k: ([self.resolve_ref(x)[0] for x in r] if isinstance(r, list) else self.resolve_ref(r)[0])
                   for k, r in tensor_kwargs.items()}
            resolved[key] = self.builder._call(self.layer_cfgs[key[0]], self.layer_prefix, self.node_prefix,
                                               key[1], inputs, tkw, kwargs, self.tree)
            stack.pop()
        return resolved[(name, call)]

    def resolve_ref(self, ref: tuple[str, int, int], from_io_list: bool = False) -> list[TensorRef]:
        name, node_index, tensor_index = ref
        lc = self.layer_cfgs.get(name)
        if lc is None:
            raise ModelFileError(f"the model config refers to a layer {name!r} that it does not define")
        if lc["class_name"] == "InputLayer":
            return self.resolved[(name, 0)]
        if _starts_at_one(lc, self.builder._dialect, from_io_list):
            node_index -= 1
        outs = self.resolve(name, node_index)
        if tensor_index >= len(outs):
            # A layer with several outputs: the node exposes them by index.
            node_id = outs[0].node
            return [TensorRef(node_id, tensor_index)]
        return [outs[tensor_index]]


def op_spelling(layer_cfg: dict[str, Any]) -> str | None:
    """The name an op node goes by in the IR: ``keras.ops.<OpClass>`` for a Keras 3 op node (its ``module`` is
    under ``keras.src.ops``), ``tf.<symbol>`` for a tf_keras ``TFOpLambda`` / ``SlicingOpLambda``. The dot keeps
    ops and layers apart: no Keras layer class name holds one."""
    class_name = str(layer_cfg.get("class_name"))
    if str(layer_cfg.get("module") or "").startswith("keras.src.ops") or _keras3_h5_op(layer_cfg):
        return f"keras.ops.{class_name}"
    if class_name in ("TFOpLambda", "SlicingOpLambda"):
        function = (layer_cfg.get("config") or {}).get("function")
        if not isinstance(function, str):
            raise ModelFileError(f"layer {layer_cfg.get('name')}: a {class_name} without a function name")
        return f"tf.{function}"
    return None


def _keras3_h5_op(layer_cfg: dict[str, Any]) -> bool:
    """Keras 3 ``.h5`` files drop ``module``; an op node is then told by its config, which holds no
    ``trainable`` (every layer's ``get_config`` writes it; an Operation's does not), and by its class, one of
    Keras 3's operations (``keras_ops.py``): a hand-written layer config without ``trainable`` stays a layer."""
    calls = layer_cfg.get("inbound_nodes") or []
    config = layer_cfg.get("config")
    return ("module" not in layer_cfg and bool(calls) and isinstance(calls[0], dict) and isinstance(config, dict)
            and "trainable" not in config and layer_cfg.get("class_name") in KERAS3_OP_CLASSES
            and not is_model(layer_cfg))


KERAS_MODULES = ("keras", "tf_keras", "tensorflow.python.keras", "tensorflow.keras")


def is_keras_module(module: str) -> bool:
    """Whether a config's ``module`` is Keras's own: ``keras``, ``keras.layers``, ``keras.src.…``, ``keras.api.…``,
    ``tf_keras.…``, ``tensorflow.python.keras.…``; never ``keras_hub.…``, ``keras_nlp.…`` or ``__main__``."""
    return any(module == root or module.startswith(root + ".") for root in KERAS_MODULES)


def class_identity(layer_cfg: dict[str, Any]) -> str:
    """The class a layer config names, spelled so that a user's own class never reads as Keras's:

    - ``Name``: Keras's own class (``module`` is Keras's), or a file that does not say (Keras 2.0-2.3 and Keras 3
      ``.h5`` configs have neither ``module`` nor ``registered_name``: a bare name is all there is);
    - ``Package>Name``: a registered class: its ``registered_name`` in ``.keras`` configs, its ``class_name``
      in ``.h5`` ones (Keras's own registered ones too: tf_keras's ``Custom>CustomScaleLayer``);
    - ``module.Name``: an unregistered class of the user's (``__main__.Name`` when ``module`` is null).

    Source: [K3]/[TFK] ``saving/serialization_lib.py``: Keras's own classes are written with their public module
    (``keras.layers``) and ``registered_name: null``; any other class with ``module`` = its ``__module__`` (null
    for ``__main__``, ``record_object_after_serialization``) and ``registered_name`` = ``Package>Name`` when
    registered, else the bare class name. This spells what the file says; which converter that gets is decided
    by ``converters/registry.py``."""
    class_name = str(layer_cfg.get("class_name"))
    if "module" not in layer_cfg and "registered_name" not in layer_cfg:
        return class_name
    module, registered = layer_cfg.get("module"), layer_cfg.get("registered_name")
    if isinstance(registered, str) and ">" in registered:
        return registered
    if isinstance(module, str) and is_keras_module(module):
        return class_name
    if not isinstance(module, str) or not module:
        module = "__main__"
    return f"{module}.{class_name}"


CONSTANT_VALUE = "_CONSTANT_VALUE"  # [TFK] keras/engine/node.py: a constant first argument of a TFOpLambda


def _parse_op_call(call: Any, layer_cfgs: dict[str, Any]):
    """An op node's call → (tensor refs in argument order, {}, {"__args__": [...], "__kwargs__": {...}}) where the
    templates hold constants as they are and each tensor as ``{"__tensor__": i}``, slices as
    ``{"__slice__": [start, stop, step]}``, ``...`` as ``{"__ellipsis__": True}``, numpy arrays as
    ``{"__array__": values, "dtype": ...}``.

    Keras 3: ``{"args": [...], "kwargs": {...}}``. tf_keras ([TFK] ``functional.py`` ``process_node``): the first
    argument's structure made of ``[layer, node, tensor, kwargs]`` entries (one entry, or a nested list of them;
    ``_CONSTANT_VALUE`` entries carry a constant), the call's keyword arguments in the entries' ``kwargs``, where
    ``[layer, node, tensor]`` is a tensor."""
    parser = _OpCallParser(layer_cfgs)
    if isinstance(call, dict):
        args = parser.keras3(call.get("args") or [])
        kwargs = {k: parser.keras3(v) for k, v in (call.get("kwargs") or {}).items()}
        return parser.refs, {}, {"__args__": args, "__kwargs__": kwargs}
    if not isinstance(call, list):
        raise ModelFileError("an inbound node is neither a list nor an object; the model config does not parse")
    first = parser.first_argument(call)
    kwargs = {k: parser.keyword(v) for k, v in parser.kwargs.items()}
    return parser.refs, {}, {"__args__": [first], "__kwargs__": kwargs}


class _OpCallParser:
    """One op call's parse (``_parse_op_call``): the tensor refs met so far, in argument order, and the keyword
    arguments a tf_keras entry carries."""

    def __init__(self, layer_cfgs: dict[str, Any]) -> None:
        self.layer_cfgs = layer_cfgs
        self.refs: list[tuple[str, int, int]] = []
        self.kwargs: dict[str, Any] = {}

    def tensor(self, ref: tuple[str, int, int]) -> dict[str, int]:
        self.refs.append(ref)
        return {"__tensor__": len(self.refs) - 1}

    def keras3(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.keras3(v) for v in value]
        if not isinstance(value, dict):
            return value
        kind, cfg = value.get("class_name"), value.get("config")
        if kind == "__keras_tensor__":
            h = cfg["keras_history"]
            return self.tensor((h[0], int(h[1]), int(h[2])))
        if kind == "__tuple__":
            return [self.keras3(v) for v in value.get("items", [])]
        if kind == "__slice__":
            return {"__slice__": [self.keras3(cfg.get(k)) for k in ("start", "stop", "step")]}
        if kind == "__ellipsis__":
            return {"__ellipsis__": True}
        if kind in ("__numpy__", "__tensor__"):  # a numpy array; a backend tensor constant (ops.sqrt(16.0))
            return {"__array__": cfg["value"], "dtype": cfg.get("dtype")}
        return {k: self.keras3(v) for k, v in normalize_value(value).items()}

    def is_ref(self, value: Any) -> bool:
        return (isinstance(value, list) and len(value) in (3, 4) and isinstance(value[0], str)
                and (value[0] in self.layer_cfgs or value[0] == CONSTANT_VALUE) and isinstance(value[1], int))

    def first_argument(self, value: Any) -> Any:
        if self.is_ref(value):
            if len(value) == 4 and isinstance(value[3], dict):
                self.kwargs.clear()
                self.kwargs.update(value[3])
            if value[0] == CONSTANT_VALUE:
                return value[2]
            return self.tensor((value[0], int(value[1]), int(value[2])))
        if isinstance(value, list):
            return [self.first_argument(v) for v in value]
        raise ModelFileError(f"an op node's argument {value!r} does not parse")

    def keyword(self, value: Any) -> Any:
        if self.is_ref(value) and value[0] != CONSTANT_VALUE:
            return self.tensor((value[0], int(value[1]), int(value[2])))
        if isinstance(value, list):
            return [self.keyword(v) for v in value]
        if isinstance(value, dict):
            if value.get("class_name") == "__ellipsis__":
                return {"__ellipsis__": True}
            return {k: self.keyword(v) for k, v in normalize_value(value).items()}
        return value


def _replace_tree_entry(tree: ModelTree, key: str, class_name: str, sub: ModelTree) -> None:
    for i, entry in enumerate(tree.layers):
        if entry[0] == key:
            tree.layers[i] = (key, class_name, sub)
            return
    tree.layers.append((key, class_name, sub))


def _starts_at_one(lc: dict[str, Any], dialect: int, from_io_list: bool) -> bool:
    """Whether node indices of this (nested model) layer count its own node 0: Keras 2 everywhere (its
    Sequential is a Functional), Keras 3 only in ``input_layers``/``output_layers`` and not for Sequential."""
    if not is_model(lc):
        return False
    if dialect == 2:
        return True
    return from_io_list and lc.get("class_name") != "Sequential"


def _dialect_of(layer_cfgs: list[dict[str, Any]]) -> int:
    for lc in layer_cfgs:
        for call in lc.get("inbound_nodes") or []:
            return 3 if isinstance(call, dict) else 2
    return 2


def _args_template(value: Any, counter: list[int]) -> Any:
    """Positional arguments with each tensor replaced by ``{"__tensor__": i}`` (its index among the node's
    inputs) and constants kept, e.g. ``not_equal(ids, 0)`` → ``[{"__tensor__": 0}, 0]``."""
    if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
        counter[0] += 1
        return {"__tensor__": counter[0] - 1}
    if isinstance(value, list):
        return [_args_template(v, counter) for v in value]
    return value


def _has_constant(template: Any) -> bool:
    if isinstance(template, dict):
        return "__tensor__" not in template
    if isinstance(template, list):
        return any(_has_constant(v) for v in template)
    return True


def _collect_keras_tensors(value: Any, out: list[tuple[str, int, int]]) -> None:
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            h = value["config"]["keras_history"]
            out.append((h[0], int(h[1]), int(h[2])))
            return
        if value.get("class_name") == "__tuple__":
            value = value.get("items", [])
        else:
            value = list(value.values())
    if isinstance(value, list):
        for v in value:
            _collect_keras_tensors(v, out)


def _ref_list(value: Any) -> list[tuple[str, int, int]]:
    """``input_layers``/``output_layers``: one ``[name, node, tensor]`` or a (nested) list or dict of them."""
    value = normalize_value(value)
    if value is None:
        return []
    if isinstance(value, dict):  # Keras flattens dict structures in sorted key order (``model.outputs``)
        value = [value[k] for k in sorted(value)]
    if isinstance(value, list) and len(value) == 3 and isinstance(value[0], str):
        return [(value[0], int(value[1]), int(value[2]))]
    refs: list[tuple[str, int, int]] = []
    for v in value:
        refs.extend(_ref_list(v))
    return refs


def parse_model_config(model_config: Any, keras_version: str, source_format: str) -> tuple[KerasGraph, ModelTree]:
    """Turn a model config (already JSON-decoded) into a flattened ``KerasGraph`` and its layer tree."""
    if not isinstance(model_config, dict) or "class_name" not in model_config:
        raise ModelFileError("the model config is not a Keras model config (no class_name)")
    if not is_model(model_config):
        raise ModelFileError(
            f"the file holds a {model_config.get('class_name')} model without a layer graph (a subclassed model?); "
            "tf2torch needs a Sequential or Functional model: rebuild it functionally and save again")
    builder = _GraphBuilder()
    cfg = model_config["config"]
    name = (cfg.get("name") if isinstance(cfg, dict) else None) or "model"
    if not isinstance(name, str):
        raise ModelFileError(f"the model's name {name!r} is not a string; the model config does not parse")
    tree = ModelTree("", model_config["class_name"])
    try:
        outputs = builder.expand_model(model_config, "", "", None, tree)
        if model_config["class_name"] == "Sequential" or isinstance(cfg, list):
            # A Sequential returns whatever its last layer returns, several tensors included.
            outputs = [TensorRef(ref.node, ALL_OUTPUTS) for ref in outputs]
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise ModelFileError(f"the model config does not parse ({type(exc).__name__}: {exc})") from None
    except RecursionError:
        raise ModelFileError("the model config nests values too deeply to be a Keras model config") from None
    inputs = [TensorRef(n.id, 0) for n in builder.nodes if builder.layers[n.layer].class_name == "InputLayer"]
    graph = KerasGraph(name=name, layers=builder.layers, nodes=_topological(builder.nodes, outputs),
                       inputs=_ordered_inputs(model_config, inputs), outputs=outputs,
                       input_specs=builder.input_specs, keras_version=keras_version, source_format=source_format,
                       containers=sorted(builder.containers),
                       output_names=_output_names(model_config))
    return graph, tree


def _output_names(model_config: dict[str, Any]) -> list[str]:
    """Keras's ``model.output_names``: the layer name of each output in ``model.outputs`` order (dict outputs
    sorted by key); a Sequential's is its last layer's."""
    cfg = model_config["config"]
    if model_config["class_name"] == "Sequential" or isinstance(cfg, list):
        layers = cfg if isinstance(cfg, list) else cfg.get("layers", [])
        last = layers[-1] if layers else {}
        name = last.get("name") or (last.get("config") or {}).get("name")
        return [str(name)] if name else []
    return [str(ref[0]) for ref in _ref_list(cfg.get("output_layers"))]


def _ordered_inputs(model_config: dict[str, Any], inputs: list[TensorRef]) -> list[TensorRef]:
    cfg = model_config["config"]
    if isinstance(cfg, dict) and cfg.get("input_layers") is not None:
        order = [r[0] for r in _ref_list(cfg["input_layers"])]
        by_name = {r.node: r for r in inputs}
        if all(n in by_name for n in order):
            return [by_name[n] for n in order]
    return inputs


def _topological(nodes: list[Node], outputs: list[TensorRef]) -> list[Node]:
    by_id = {n.id: n for n in nodes}
    order: list[Node] = []
    seen: set[str] = set()
    for start in [n.id for n in nodes]:
        stack = [(start, False)]
        while stack:
            node_id, done = stack.pop()
            if done:
                if node_id not in seen:
                    seen.add(node_id)
                    order.append(by_id[node_id])
                continue
            if node_id in seen:
                continue
            stack.append((node_id, True))
            node = by_id[node_id]
            for ref in node.all_inputs():
                if ref.node not in seen:
                    stack.append((ref.node, False))
    return order
