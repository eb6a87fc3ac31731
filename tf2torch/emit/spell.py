"""Spell a torch module as the Python expression that builds it: ``nn.Conv2d(3, 64, kernel_size=7, stride=2,
padding=3, bias=False)``.

Writers are tried in turn: containers (``nn.Sequential`` …), torch's own ``extra_repr`` for its built-in layers, a
few hand-written ones, and the constructor signature read back from the module's attributes. An expression only
counts when the module it builds has the same state as the original: every attribute, the names, shapes and
dtypes of parameters and buffers, and the values of non-persistent buffers (weights come from the safetensors
file). Behaviour is a function of class and state, so an accepted expression builds a module that computes the
same thing; a module no writer can spell is refused by name.
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import keyword
import math
import operator
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..stand_ins import skip_random_init

RUNTIME_PACKAGE = "tf2torch.nn"
MAX_LITERAL_ELEMENTS = 4096  # a constant tensor spelled inline (Rescaling's per-channel scale); larger: refused
# ``tf2torch_regularizers``: Keras's training penalties, read by ``tf2torch.regularization_loss`` on the converted
# module; they change no output, and the generated source names the layers it leaves them out of (issue #20: a
# 2017 Keras 2.0.5 .h5 with kernel regularizers was refused).
MODULE_INTERNALS = frozenset(vars(nn.Module())) | {"_parameters", "_buffers", "_modules",
                                                   "_non_persistent_buffers_set", "tf2torch_regularizers"}
FUNCTION_HOMES = (("torch", torch), ("F", F), ("torch.special", torch.special), ("torch.linalg", torch.linalg),
                  ("operator", operator), ("math", math))
TUPLE_ARGUMENTS = {"kernel_size", "stride", "padding", "dilation", "output_padding", "scale_factor", "output_size"}


class CannotSpell(Exception):
    """A value or module has no expression that rebuilds it."""


class Spelling:
    """What the expressions written so far need: imports and the run-time helpers copied from ``tf2torch/nn``."""

    def __init__(self) -> None:
        self.runtime: dict[str, Any] = {}
        self.imports: set[str] = set()

    def use_runtime(self, obj: Any) -> ast.expr:
        name = obj.__name__
        if self.runtime.get(name, obj) is not obj:
            raise CannotSpell(f"two run-time helpers are both called {name}")
        self.runtime[name] = obj
        return ast.Name(name, ast.Load())

    def use(self, name: str) -> ast.expr:
        self.imports.add(name.split(".")[0])
        node: ast.expr = ast.Name(name.split(".")[0], ast.Load())
        for part in name.split(".")[1:]:
            node = ast.Attribute(node, part, ast.Load())
        return node

    def namespace(self) -> dict[str, Any]:
        return {"torch": torch, "nn": nn, "F": F, "OrderedDict": OrderedDict, "operator": operator, "math": math,
                **self.runtime}


# -- values -------------------------------------------------------------------------------------------------------
def call(func: ast.expr, args: list[ast.expr] | None = None, **kwargs: ast.expr) -> ast.Call:
    return ast.Call(func, args or [], [ast.keyword(k, v) for k, v in kwargs.items()])


def tensor_expr(value: torch.Tensor, sp: Spelling, loaded: bool) -> ast.expr:
    """A tensor whose values come from the weights file is spelled by shape; a constant one by value."""
    dtype = {} if value.dtype == torch.float32 else {"dtype": sp.use(str(value.dtype))}
    shape = ast.Tuple([ast.Constant(int(d)) for d in value.shape], ast.Load())
    if loaded:
        return call(sp.use("torch.zeros"), [shape], **dtype)
    if value.numel() > MAX_LITERAL_ELEMENTS:
        raise CannotSpell(f"a constant tensor of {value.numel()} elements (at most {MAX_LITERAL_ELEMENTS} are "
                          "written inline)")
    items = value_expr(value.detach().cpu().tolist(), sp)
    return call(sp.use("torch.tensor"), [items], **dtype)


def function_expr(fn: Callable[..., Any], sp: Spelling) -> ast.expr:
    name = getattr(fn, "__name__", None)
    if name and (getattr(fn, "__module__", None) or "").startswith(RUNTIME_PACKAGE + "."):
        return sp.use_runtime(fn)
    for home_name, home in FUNCTION_HOMES:
        if name and getattr(home, name, None) is fn:
            return sp.use(f"{home_name}.{name}")
    raise CannotSpell(f"function {fn!r} is neither a torch function nor a tf2torch.nn helper")


def value_expr(value: Any, sp: Spelling, weight_ids: frozenset[int] = frozenset()) -> ast.expr:
    if value is None or isinstance(value, (bool, int, str)):
        return ast.Constant(value)
    if isinstance(value, float):
        if math.isfinite(value):
            return ast.Constant(value)
        return call(ast.Name("float", ast.Load()), [ast.Constant(repr(value))])
    if isinstance(value, (tuple, list, torch.Size)):
        items = [value_expr(v, sp, weight_ids) for v in value]
        return ast.List(items, ast.Load()) if isinstance(value, list) else ast.Tuple(items, ast.Load())
    if isinstance(value, dict):
        if not all(isinstance(k, (str, int)) for k in value):
            raise CannotSpell(f"a dict with keys {list(value)!r}")
        return ast.Dict([ast.Constant(k) for k in value], [value_expr(v, sp, weight_ids) for v in value.values()])
    if isinstance(value, torch.dtype):
        return sp.use(str(value))
    if isinstance(value, torch.device):
        return call(sp.use("torch.device"), [ast.Constant(str(value))])
    if isinstance(value, torch.Tensor):
        return tensor_expr(value, sp, loaded=id(value) in weight_ids)
    if type(value).__name__ == "Slot" and type(value).__module__ == f"{RUNTIME_PACKAGE}.ops":  # an Op's input slot
        return call(sp.use_runtime(type(value)), [ast.Constant(value.index)])
    if isinstance(value, nn.Module):
        return module_expr(value, sp)
    if inspect.isclass(value) and issubclass(value, nn.Module):
        return class_expr(value, sp)
    if callable(value):
        return function_expr(value, sp)
    raise CannotSpell(f"a value of type {type(value).__name__}")


def class_expr(cls: type, sp: Spelling) -> ast.expr:
    if cls.__module__.startswith(RUNTIME_PACKAGE + "."):
        return sp.use_runtime(cls)
    if getattr(nn, cls.__name__, None) is cls:
        return sp.use(f"nn.{cls.__name__}")
    raise CannotSpell(f"class {cls.__module__}.{cls.__qualname__} is neither in torch.nn nor in tf2torch/nn "
                      "(run-time modules must live in tf2torch/nn to be copied into generated code)")


# -- module writers -----------------------------------------------------------------------------------------------
def weights_of(module: nn.Module) -> frozenset[int]:
    """ids of the tensors the weights file fills: parameters and persistent buffers, at any depth."""
    ids = {id(p) for p in module.parameters()}
    for sub in module.modules():
        ids.update(id(b) for name, b in sub._buffers.items()
                   if b is not None and name not in sub._non_persistent_buffers_set)
    return frozenset(ids)


def container_writer(module: nn.Module, sp: Spelling) -> ast.expr | None:
    children = list(module.named_children())
    if type(module) is nn.Sequential:
        exprs = [module_expr(child, sp) for _, child in children]
        if [name for name, _ in children] == [str(i) for i in range(len(children))]:
            return call(sp.use("nn.Sequential"), exprs)
        names = [name for name, _ in children]
        if all(n.isidentifier() and not keyword.iskeyword(n) for n in names):
            return call(sp.use("nn.Sequential"), [call(sp.use("OrderedDict"), **dict(zip(names, exprs)))])
        pairs = ast.List([ast.Tuple([ast.Constant(n), e], ast.Load()) for n, e in zip(names, exprs)], ast.Load())
        return call(sp.use("nn.Sequential"), [call(sp.use("OrderedDict"), [pairs])])
    if type(module) is nn.ModuleList:
        return call(sp.use("nn.ModuleList"), [ast.List([module_expr(c, sp) for _, c in children], ast.Load())])
    if type(module) is nn.ModuleDict:
        return call(sp.use("nn.ModuleDict"), [ast.Dict([ast.Constant(n) for n, _ in children],
                                                        [module_expr(c, sp) for _, c in children])])
    return None


def simplify_tuples(expr: ast.Call, cls: type) -> ast.Call:
    """``kernel_size=(7, 7)`` → ``kernel_size=7`` (torch's ``_pair``/``_triple`` expand it back); arguments equal
    to their default are left out."""
    params = [p for p in inspect.signature(cls.__init__).parameters.values()][1:]
    named = [(params[i].name if i < len(params) else None, a) for i, a in enumerate(expr.args)]
    for name, value in named:
        if name in TUPLE_ARGUMENTS:
            expr.args[expr.args.index(value)] = collapse(value)
    defaults = {p.name: p.default for p in params if p.default is not p.empty}
    keywords = []
    for kw in expr.keywords:
        if kw.arg in TUPLE_ARGUMENTS:
            kw.value = collapse(kw.value)
        try:
            if kw.arg in defaults and same_value(ast.literal_eval(kw.value), defaults[kw.arg]):
                continue
        except ValueError:
            pass
        keywords.append(kw)
    expr.keywords = keywords
    return expr


def collapse(value: ast.expr) -> ast.expr:
    if (isinstance(value, ast.Tuple) and value.elts and all(isinstance(e, ast.Constant) for e in value.elts)
            and len({repr(e.value) for e in value.elts}) == 1):
        return value.elts[0]
    return value


def runtime_twin(cls: type) -> bool:
    """A ``tf2torch/nn`` subclass of the torch layer of the same name that keeps torch's constructor (its
    ``Conv2d``): spelled like torch's own, from the runtime copy."""
    torch_cls = getattr(nn, cls.__name__, None)
    return (cls.__module__.startswith(RUNTIME_PACKAGE + ".") and cls.__bases__ == (torch_cls,)
            and "__init__" not in vars(cls) and "extra_repr" not in vars(cls))


def torch_repr_writer(module: nn.Module, sp: Spelling) -> ast.expr | None:
    """Torch's built-in layers print as their own constructor: ``Conv2d(3, 64, kernel_size=(7, 7), ...)``."""
    cls = type(module)
    twin = runtime_twin(cls)
    if (getattr(nn, cls.__name__, None) is not cls and not twin) or next(module.children(), None) is not None:
        return None
    try:
        expr = ast.parse(f"nn.{cls.__name__}({module.extra_repr()})", mode="eval").body
    except SyntaxError:
        return None
    names = {n.id for n in ast.walk(expr) if isinstance(n, ast.Name)}
    if names != {"nn"} or not isinstance(expr, ast.Call):
        return None
    if twin:
        expr.func = sp.use_runtime(cls)
    else:
        sp.use("nn")
    return simplify_tuples(expr, cls)


def multihead_attention_writer(module: nn.Module, sp: Spelling) -> ast.expr | None:
    if type(module) is not nn.MultiheadAttention:
        return None
    m = module
    kwargs: dict[str, ast.expr] = {}
    for name, value, default in (("dropout", m.dropout, 0.0), ("bias", m.in_proj_bias is not None, True),
                                 ("add_bias_kv", m.bias_k is not None, False),
                                 ("add_zero_attn", m.add_zero_attn, False), ("kdim", m.kdim, m.embed_dim),
                                 ("vdim", m.vdim, m.embed_dim), ("batch_first", m.batch_first, False)):
        if value != default:
            kwargs[name] = ast.Constant(value)
    return call(sp.use("nn.MultiheadAttention"), [ast.Constant(m.embed_dim), ast.Constant(m.num_heads)], **kwargs)


def torch_rnn_writer(module: nn.Module, sp: Spelling) -> ast.expr | None:
    """``nn.RNN``'s printout leaves out ``nonlinearity``."""
    if type(module) is not nn.RNN:
        return None
    expr = torch_repr_writer(module, sp)
    if isinstance(expr, ast.Call) and module.nonlinearity != "tanh":
        expr.keywords.append(ast.keyword("nonlinearity", ast.Constant(module.nonlinearity)))
    return expr


def keras_training_writer(module: nn.Module, sp: Spelling) -> ast.expr | None:
    """Batch norms that train as Keras does (``nn.normalization.KerasTrainingMixin``): torch's constructor (or
    the class's own signature) plus the mixin's keywords."""
    from ..nn.normalization import KerasTrainingMixin

    if not isinstance(module, KerasTrainingMixin):
        return None
    cls = type(module)
    if cls.__init__ is KerasTrainingMixin.__init__:  # KerasBatchNorm1d/2d/3d: torch's own arguments
        try:
            expr = ast.parse(f"{cls.__name__}({module.extra_repr()})", mode="eval").body
        except SyntaxError:
            return None
        if not isinstance(expr, ast.Call):
            return None
        expr.func = sp.use_runtime(cls)
    else:
        expr = signature_writer(module, sp)
    if not isinstance(expr, ast.Call):
        return None
    present = {k.arg for k in expr.keywords}
    for name, default in (("biased_moving_variance", False), ("frozen", False), ("training_refusal", "")):
        value = getattr(module, name)
        if value != default and name not in present:
            expr.keywords.append(ast.keyword(name, ast.Constant(value)))
    return expr


MISSING = object()
# Constructor arguments a module does not keep under their own name: class name → reader.
def dense_cell_arguments(m: nn.Module) -> dict[str, Any]:
    return {"input_size": m.weight_ih.shape[1], "bias": m.bias_ih is not None}


def sized(m: nn.Module) -> dict[str, Any]:
    return {"height": m.size[0], "width": m.size[1]}


def affine_arguments(m: nn.Module) -> dict[str, Any]:
    """``scale``/``center`` keep ``weight``/``bias`` parameters of the statistics' ``shape``."""
    present = m.weight if m.weight is not None else m.bias
    shape = tuple(present.shape) if present is not None else tuple(getattr(m, "running_mean", torch.zeros(1)).shape)
    return {"shape": shape, "scale": m.weight is not None, "center": m.bias is not None}


def same_pool_arguments(m: nn.Module) -> dict[str, Any]:
    return {"kernel_size": tuple(m.pool.kernel_size), "stride": tuple(m.pool.stride)}


ARGUMENT_READERS: dict[str, Callable[[nn.Module], dict[str, Any]]] = {
    "BroadcastBatchNorm": affine_arguments,
    "LayerNormOnDims": affine_arguments,
    "RMSNormOnDims": lambda m: {"shape": tuple(m.weight.shape)},
    "TFSameAvgPool1d": same_pool_arguments,
    "TFSameAvgPool2d": same_pool_arguments,
    "TFSameAvgPool3d": same_pool_arguments,
    "TFResize": sized,
    "CropToAspect": sized,
    "PadToAspect": sized,
    "CenterCrop2d": sized,
    "BroadcastPReLU": lambda m: {"alpha_shape": tuple(m.alpha.shape)},
    "EinsumDense": lambda m: {"kernel_shape": tuple(m.kernel.shape),
                              "bias_shape": tuple(m.bias.shape) if m.bias is not None else None},
    "MultiHeadAttention": lambda m: {"input_rank": len(m.dot_equation.split(",")[0]) - 1},
    "DotProductAttention": lambda m: {"use_scale": m.scale is not None, "concat": m.concat_score_weight is not None},
    "AdditiveAttention": lambda m: {"use_scale": m.scale is not None,
                                    "features": m.scale.shape[0] if m.scale is not None else 1},
    "ChannelScale": lambda m: {"channels": m.gamma.shape[0]},
    "Op": lambda m: {"constants": dict(m.named_buffers(recurse=False)) or None, "kwargs": m.kwargs or None},
    "KerasLSTMCell": dense_cell_arguments,
    "KerasGRUCell": dense_cell_arguments,
    "KerasSimpleRNNCell": dense_cell_arguments,
}


def is_boolean(p: inspect.Parameter) -> bool:
    return isinstance(p.default, bool) or p.annotation in (bool, "bool")


def read_argument(module: nn.Module, p: inspect.Parameter, overrides: dict[str, Any]) -> Any:
    if p.name in overrides:
        return overrides[p.name]
    if not hasattr(module, p.name):
        return MISSING
    value = getattr(module, p.name)
    if is_boolean(p) and (value is None or isinstance(value, nn.Parameter)):
        return value is not None  # ``bias=True`` keeps a Parameter called ``bias``
    return value


def same_value(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return False
    try:
        return type(a) is type(b) and bool(a == b)
    except Exception:
        return False


def signature_writer(module: nn.Module, sp: Spelling) -> ast.expr | None:
    """``Class(arg, ..., keyword=value)`` with each ``__init__`` argument read back from the attribute of the
    same name; arguments equal to their default are left out."""
    cls = type(module)
    func = class_expr(cls, sp)
    overrides = ARGUMENT_READERS.get(cls.__name__, lambda m: {})(module)
    weight_ids = weights_of(module)
    args: list[ast.expr] = []
    kwargs: dict[str, ast.expr] = {}
    for p in list(inspect.signature(cls.__init__).parameters.values())[1:]:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or (p.name in ("device", "dtype") and p.default is None):
            continue  # torch's factory keywords
        value = read_argument(module, p, overrides)
        if value is MISSING:
            if p.default is p.empty:
                raise CannotSpell(f"{cls.__name__} keeps no attribute for its argument {p.name!r}")
            continue
        if p.default is not p.empty and same_value(value, p.default):
            continue
        expr = value_expr(value, sp, weight_ids)
        if p.default is p.empty and p.kind != p.KEYWORD_ONLY and not kwargs:
            args.append(expr)
        else:
            kwargs[p.name] = expr
    return call(func, args, **kwargs)


WRITERS = (container_writer, multihead_attention_writer, torch_rnn_writer, keras_training_writer, torch_repr_writer,
           signature_writer)


def module_expr(module: nn.Module, sp: Spelling) -> ast.expr:
    """The expression that rebuilds ``module`` (weights aside), checked by rebuilding it."""
    reasons = []
    for writer in WRITERS:
        try:
            expr = writer(module, sp)
        except CannotSpell as exc:
            reasons.append(str(exc))
            continue
        if expr is None:
            continue
        problem = rebuild_difference(expr, module, sp)
        if problem is None:
            return expr
        reasons.append(f"{ast.unparse(expr)[:200]} differs: {problem}")
    cls = type(module)
    raise CannotSpell(f"cannot write {cls.__module__}.{cls.__qualname__} as Python source"
                      + (f" ({'; '.join(reasons)})" if reasons else ""))


# -- the check: rebuild and compare -------------------------------------------------------------------------------
def has_constant_buffers(module: nn.Module) -> bool:
    return any(sub._non_persistent_buffers_set for sub in module.modules())


@contextlib.contextmanager
def build_context(on_meta: bool) -> Iterator[None]:
    with skip_random_init(), (torch.device("meta") if on_meta else contextlib.nullcontext()):
        yield


def rebuild(expr: ast.expr, sp: Spelling, on_meta: bool) -> Any:
    code = compile(ast.fix_missing_locations(ast.Expression(expr)), "<tf2torch emit>", "eval")
    with build_context(on_meta):
        return eval(code, sp.namespace())  # our own expression, built from the module's attributes


def rebuild_difference(expr: ast.expr, module: nn.Module, sp: Spelling) -> str | None:
    on_meta = not has_constant_buffers(module)
    try:
        rebuilt = rebuild(expr, sp, on_meta)
    except Exception as exc:
        if not on_meta:
            return f"building it failed ({type(exc).__name__}: {exc})"
        try:
            rebuilt = rebuild(expr, sp, on_meta=False)
        except Exception as exc2:
            return f"building it failed ({type(exc2).__name__}: {exc2})"
    return state_difference(module, rebuilt, weights_of(module), type(module).__name__)


def tensor_difference(a: torch.Tensor, b: torch.Tensor, compare_values: bool) -> str | None:
    if tuple(a.shape) != tuple(b.shape) or a.dtype != b.dtype:
        return f"{tuple(b.shape)} {b.dtype} instead of {tuple(a.shape)} {a.dtype}"
    if isinstance(a, nn.Parameter) != isinstance(b, nn.Parameter):  # requires_grad (frozen layers) is not rebuilt
        return "a parameter where a buffer was (or the reverse)"
    if compare_values and not (a.is_meta or b.is_meta):
        equal = torch.equal(a, b) if not a.is_floating_point() else bool(
            torch.allclose(a.cpu(), b.cpu(), rtol=0, atol=0, equal_nan=True))
        if not equal:
            return "other values"
    return None


def value_difference(a: Any, b: Any, weight_ids: frozenset[int], where: str) -> str | None:
    if isinstance(a, torch.Tensor):
        if not isinstance(b, torch.Tensor):
            return f"{where}: not a tensor"
        problem = tensor_difference(a, b, compare_values=id(a) not in weight_ids)
        return f"{where}: {problem}" if problem else None
    if isinstance(a, weakref.ref):  # nn.LSTM keeps weak references to its weights
        return value_difference(a(), b() if isinstance(b, weakref.ref) else b, weight_ids, where)
    if isinstance(a, nn.Module):
        return state_difference(a, b, weight_ids, where) if isinstance(b, nn.Module) else f"{where}: not a module"
    if isinstance(a, (list, tuple)):
        if type(a) is not type(b) or len(a) != len(b):
            return f"{where}: {b!r} instead of {a!r}"
        for i, (x, y) in enumerate(zip(a, b)):
            problem = value_difference(x, y, weight_ids, f"{where}[{i}]")
            if problem:
                return problem
        return None
    if isinstance(a, dict):
        if not isinstance(b, dict) or list(a) != list(b):
            return f"{where}: keys {list(b) if isinstance(b, dict) else b!r} instead of {list(a)}"
        for key in a:
            problem = value_difference(a[key], b[key], weight_ids, f"{where}[{key!r}]")
            if problem:
                return problem
        return None
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return None
    try:
        equal = type(a) is type(b) and (a is b or bool(a == b))
    except Exception:
        equal = False
    return None if equal else f"{where}: {b!r} instead of {a!r}"


def state_difference(a: nn.Module, b: nn.Module, weight_ids: frozenset[int], where: str) -> str | None:
    """The first difference between two modules' states (weights by shape and dtype only)."""
    if type(a) is not type(b):
        return f"{where}: {type(b).__name__} instead of {type(a).__name__}"
    da, db = vars(a), vars(b)
    for key in sorted((set(da) | set(db)) - MODULE_INTERNALS):
        if key not in da or key not in db:
            return f"{where}.{key}: present on one side only"
        problem = value_difference(da[key], db[key], weight_ids, f"{where}.{key}")
        if problem:
            return problem
    for table in ("_parameters", "_buffers", "_modules"):
        ta, tb = da[table], db[table]
        if list(ta) != list(tb):
            return f"{where}: {table[1:]} {list(tb)} instead of {list(ta)}"
        for key in ta:
            if (ta[key] is None) != (tb[key] is None):
                return f"{where}.{key}: None on one side only"
            if ta[key] is not None:
                problem = value_difference(ta[key], tb[key], weight_ids, f"{where}.{key}")
                if problem:
                    return problem
    if a._non_persistent_buffers_set != b._non_persistent_buffers_set:
        return f"{where}: other non-persistent buffers"
    return None
