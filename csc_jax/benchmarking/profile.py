"""Where a step's time goes: a jax.profiler trace, with XLA's op time summed per model part,
per layer and per op family.

Every executed XLA op of the trace is mapped to what the compiled HLO keeps for it
(:func:`hlo_ops`): the ``op_name`` metadata (the Flax module path and the JAX transformation;
``transpose`` = backward), the Python call stack it was traced from, and the matmul FLOPs it
executes. Its time is then summed per model part and layer type (:func:`op_areas`) and per op
family (:func:`op_family`: 1x1 Dense, depthwise conv, gLN, ..., loss, mixing, optimizer). The
trace and the HLO text are not stable APIs, so a trace that cannot be read gives
``{'error': ...}`` instead of failing the benchmark.
"""

from __future__ import annotations

import dataclasses
import glob
import gzip
import json
import math
import os
import re
import time
from collections.abc import Sequence
from typing import Any

import jax

from csc_jax.benchmarking.timing import StepTimer

# In op_name paths the model appears inside a transformation, 'jvp(CSCModel)' or
# 'transpose(jvp(CSCModel))' (backward); then come methods ('CSCModel.bottom_up'), Flax
# submodules ('trunk', 'TCNBlock_3', 'Dense_0') and last the primitive ('mul').
_MODEL_SCOPE = re.compile(r"^[\w()]*\(([A-Z]\w*)\)+$")
_LAYER = re.compile(r"^([A-Z]\w*?)(?:_\d+)?$")
# Trace events named like an HLO instruction ('fusion.3', 'dot', 'copy-start'); the others
# are runtime and Python events (newer traces also name the op in args['hlo_op']).
_XLA_OP_NAME = re.compile(r"^[a-z][\w\-]*(\.\d+)?$")

# ---------------------------------------------------------------------- the compiled HLO
_INSTRUCTION = re.compile(r"^\s+(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*(.*)$")
_ARRAY_SHAPE = re.compile(r"^(\w+)\[([\d,]*)\]")
# Bytes per element of the HLO types that are not 4 bytes wide (f32, s32, u32).
_ELEMENT_BYTES = {"pred": 1, "s8": 1, "u8": 1, "bf16": 2, "f16": 2, "s16": 2, "u16": 2}
_ELEMENT_BYTES |= {"f64": 8, "s64": 8, "u64": 8, "c64": 8, "c128": 16}
_OPERANDS = re.compile(r"\s[\w\-]+\(([^)]*)\)")  # the operand list after the opcode
_DOT = re.compile(r"\sdot\([^%)]*%([\w.\-]+)")  # its lhs operand (with or without a shape)
_LHS_CONTRACTING = re.compile(r"lhs_contracting_dims=\{([\d,]*)\}")
_CALLS = re.compile(r"calls=%?([\w.\-]+)")
_OP_NAME = re.compile(r'op_name="([^"]*)"')
_STACK_FRAME = re.compile(r"stack_frame_id=(\d+)")
_OPERAND = re.compile(r"%([\w.\-]+)")
_TABLES = ("FileNames", "FunctionNames", "FileLocations", "StackFrames")
_TABLE_ROW = re.compile(r"^(\d+) (.*)$")


@dataclasses.dataclass(frozen=True)
class HloOp:
    """What the compiled HLO says about one instruction (an op the trace may time).

    Attributes:
      op_name: its ``op_name`` metadata; for a fusion without one, that of the instruction
        inside that does the most matmul work (else its root); else that of its first user;
        '' when none of them has one.
      files: source files of the Python stack it was traced from, innermost first (() when
        the HLO has no stack frames).
      matmul_flops: FLOPs of the ``dot`` instructions it executes, fused ones included
        (2 * output elements * contracted size; elementwise work is not counted).
      bytes: bytes of its array operands and output: what it must at least move (a fusion's
        intermediates stay in registers or cache; tuples count 0).
    """

    op_name: str
    files: tuple[str, ...]
    matmul_flops: float
    bytes: float = 0.0


def _stack_files(hlo_lines: Sequence[str]) -> dict[int, tuple[str, ...]]:
    """stack_frame_id -> source files of that frame and its callers, innermost first.

    The module text ends with four tables: FileNames, FunctionNames, FileLocations
    ('{file_name_id=... }') and StackFrames ('{file_location_id=L parent_frame_id=P}').
    P - 1 is the caller's row (0: none): checked on jaxlib 0.10 against the call stacks of
    Flax layers (Dense.__call__ <- TCNBlock.__call__ <- ... <- train_step).
    """
    table, rows = None, {name: {} for name in _TABLES}
    for line in hlo_lines:
        if line in _TABLES:
            table = line
            continue
        m = _TABLE_ROW.match(line) if table else None
        if m is None:
            table = None
            continue
        rows[table][int(m.group(1))] = m.group(2)

    def field(text, key):
        found = re.search(key + r"=(\d+)", text)
        return int(found.group(1)) if found else 0

    names = {i: v.strip('"') for i, v in rows["FileNames"].items()}
    location_file = {
        i: names.get(field(v, "file_name_id"), "") for i, v in rows["FileLocations"].items()
    }
    frames = {
        i: (location_file.get(field(v, "file_location_id"), ""), field(v, "parent_frame_id") - 1)
        for i, v in rows["StackFrames"].items()
    }
    out = {}
    for start in frames:
        chain, frame, seen = [], start, set()
        while frame in frames and frame not in seen:
            seen.add(frame)
            file, frame = frames[frame]
            chain.append(file)
        out[start] = tuple(chain)
    return out


def hlo_ops(hlo_text: str) -> dict[str, HloOp]:
    """Instruction name -> :class:`HloOp`, for every instruction of a compiled HLO module text
    (``Compiled.as_text()``: the optimised, scheduled module, whose instruction names are the
    names of the profiler's op events)."""
    lines = hlo_text.splitlines()
    stacks = _stack_files(lines)
    info: dict[str, dict[str, Any]] = {}
    computations: dict[str, list[str]] = {}
    current: list[str] = []
    for line in lines:
        if line.rstrip().endswith("{") and not line[0].isspace() and "HloModule" not in line:
            name = line.split()[1] if line.startswith("ENTRY") else line.split()[0]
            current = computations.setdefault(name.lstrip("%"), [])
            continue
        m = _INSTRUCTION.match(line)
        if m is None:
            continue
        name, rest = m.group(1), m.group(2)
        current.append(name)
        shape = _ARRAY_SHAPE.match(rest)
        op_name = _OP_NAME.search(rest)
        frame = _STACK_FRAME.search(rest)
        dims = [int(d) for d in shape.group(2).split(",") if d] if shape else None
        operands = _OPERANDS.search(rest)
        info[name] = {
            "dims": dims,
            "size": 0 if dims is None else math.prod(dims) * _ELEMENT_BYTES.get(shape.group(1), 4),
            "inputs": _OPERAND.findall(operands.group(1)) if operands else [],
            "dot": _DOT.search(rest),
            "contracting": _LHS_CONTRACTING.search(rest),
            "calls": _CALLS.findall(rest),
            "op_name": op_name.group(1) if op_name else "",
            "files": stacks.get(int(frame.group(1)), ()) if frame else (),
            "root": line.lstrip().startswith("ROOT"),
            "operands": [o for o in _OPERAND.findall(rest) if o != name],
        }
    users: dict[str, list[str]] = {}
    for name, d in info.items():
        for operand in d["operands"]:
            users.setdefault(operand, []).append(name)

    def own_flops(d):
        if not d["dot"] or d["dims"] is None:
            return 0.0
        lhs = info.get(d["dot"].group(1), {}).get("dims") or []
        axes = d["contracting"].group(1).split(",") if d["contracting"] else []
        contracted = math.prod(lhs[int(a)] for a in axes if a and int(a) < len(lhs))
        return 2.0 * math.prod(d["dims"]) * contracted

    resolved: dict[str, tuple[str, tuple[str, ...], float]] = {}

    def resolve(name):  # -> (op_name, files, matmul_flops) from the instruction and its callees
        if name in resolved:
            return resolved[name]
        resolved[name] = ("", (), 0.0)  # guards against a (malformed) cycle
        d = info[name]
        flops, best = own_flops(d), None
        for comp in d["calls"]:
            for inner in computations.get(comp, []):
                op, files, f = resolve(inner)
                flops += f
                key = (f, info[inner]["root"])
                if op and (best is None or key > best[0]):
                    best = (key, op, files)
        if d["op_name"]:
            resolved[name] = (d["op_name"], d["files"], flops)
        elif best is not None:
            resolved[name] = (best[1], best[2], flops)
        else:
            resolved[name] = ("", (), flops)
        return resolved[name]

    out = {}
    for name in info:
        op, files, flops = resolve(name)
        if not op:  # e.g. a fused reduce-window without metadata: named after its consumer
            for user in users.get(name, []):
                op, files, _ = resolve(user)
                if op:
                    break
        moved = info[name]["size"] + sum(
            info.get(i, {}).get("size", 0) for i in info[name]["inputs"]
        )
        out[name] = HloOp(op, files, flops, float(moved))
    return out


# ---------------------------------------------------------------------- attribution
def _modules_and_methods(parts: Sequence[str], scope: int) -> tuple[list[str], list[str]]:
    """The Flax submodules and the model's methods named between the model scope
    ``parts[scope]`` and the primitive (the last part) of a split op_name.

    A submodule's method other than ``__call__`` appears as 'GlobalLayerNorm_1.standardise' and
    counts as that submodule; the model's own methods ('CSCModel.bottom_up') are methods.
    """
    model = _MODEL_SCOPE.match(parts[scope]).group(1)
    modules, methods = [], []
    for p in parts[scope + 1 : -1]:
        if p.startswith(model + "."):
            methods.append(p)
        elif "(" not in p:
            modules.append(p.split(".")[0])
    return modules, methods


def op_areas(op_name: str) -> tuple[str, str, str]:
    """(model part, layer type, 'fwd'|'bwd') of an HLO op_name, e.g.
    'jit(train_step)/transpose(jvp(CSCModel))/CSCModel.bottom_up/trunk/TCN_0/TCNBlock_3/
    GlobalLayerNorm_1/mul' -> ('trunk', 'GlobalLayerNorm', 'bwd')."""
    parts = op_name.split("/")
    scope = next((i for i, p in enumerate(parts) if _MODEL_SCOPE.match(p)), None)
    if scope is None:
        return "(outside the model: mixing, loss, optimizer)", "-", "-"
    direction = "bwd" if parts[scope].startswith("transpose(") else "fwd"
    modules, methods = _modules_and_methods(parts, scope)
    if modules:
        part = re.sub(r"_\d+$", "", modules[0])
    else:
        part = methods[-1] if methods else "(model, top level)"
    layers = [m.group(1) for p in modules[1:] if (m := _LAYER.match(p))]
    if layers:
        layer = layers[-1]
    else:  # a named submodule such as attention/key
        layer = modules[-1] if len(modules) > 1 else "-"
    return part, layer, direction


TOP_OPS = 25  # heaviest instructions kept in a profile (evidence for the families' times)

# Op families, in report order; what each one holds is in FAMILY_NOTES.
FAMILIES = (
    "1x1 Dense",
    "depthwise conv",
    "gLN",
    "PReLU",
    "TCN residual / skip",
    "framing / overlap-add",
    "attention",
    "loss",
    "mixing",
    "optimizer",
    "other",
)
FAMILY_NOTES = {
    "1x1 Dense": "TCN in/out projections, bottleneck, speaker / FiLM / mask heads",
    "depthwise conv": "dilated depthwise conv (shifted multiply-adds) with its pad",
    "gLN": "global layer norm: statistics and normalisation",
    "PReLU": "PReLU activations",
    "TCN residual / skip": "split of each block's output into residual and skip, their sums",
    "framing / overlap-add": "waveform encoder and decoder: framing, their Dense, overlap-add",
    "attention": "cross-attention: LayerNorms, projections, pooling, its query",
    "loss": "objective outside the model: SI-SNR, CSC / PIT loss, stream weights",
    "mixing": "on-device mixing (augmentation)",
    "optimizer": "optax: gradient norm, clipping, Adam, schedule, update",
    "other": "FiLM and masking elementwise, target weights, copies, the rest",
}
# Flax scopes (class names or the attribute names CSCModel gives them) -> family. The
# encoder / decoder and attention own Dense layers of their own, so they are matched first,
# anywhere in the module path; the rest by the innermost module that names a family.
_OWNING_SCOPES = {
    "encoder": "framing / overlap-add",
    "decoder": "framing / overlap-add",
    "WaveformEncoder": "framing / overlap-add",
    "WaveformDecoder": "framing / overlap-add",
    "attention": "attention",
    "CrossAttention": "attention",
}
_LAYER_SCOPES = {
    "GlobalLayerNorm": "gLN",
    "DepthwiseConv1D": "depthwise conv",
    "PReLU": "PReLU",
    "speaker_act": "PReLU",
    "mask_act": "PReLU",
    "Dense": "1x1 Dense",
    "DenseGeneral": "1x1 Dense",
    "speaker_hidden": "1x1 Dense",
    "speaker_out": "1x1 Dense",
    "film": "1x1 Dense",
    "mask_out": "1x1 Dense",
    "mean_pool_proj": "1x1 Dense",
}
# Ops of these scopes that belong to no layer inside them: the residual / skip glue.
_TCN_SCOPES = ("TCNBlock", "TCN", "SeparatorTrunk", "extraction_tcn", "trunk")
# Outside the model, the innermost source file of the op's Python stack that names a family.
_SOURCE_FAMILIES = (
    ("csc_jax/data/mixing.py", "mixing"),
    ("/optax/", "optimizer"),
    ("csc_jax/losses.py", "loss"),
    ("csc_jax/training/objectives.py", "loss"),
)


def op_family(op_name: str, files: Sequence[str] = ()) -> str:
    """The op family (one of FAMILIES) of an HLO op.

    Args:
      op_name: its op_name metadata, e.g. 'jit(train_step)/jvp(CSCModel)/CSCModel.bottom_up/
        trunk/TCN_0/TCNBlock_0/DepthwiseConv1D_0/add' -> 'depthwise conv'.
      files: the source files of its Python stack, innermost first (:class:`HloOp`). They
        decide ops outside the model: mixing.py -> 'mixing', optax -> 'optimizer',
        losses.py / objectives.py -> 'loss'. Without them the op_name alone decides:
        differentiated code outside the model ('jvp(' / 'transpose(') -> 'loss', 'mix_' ->
        'mixing'.
    """
    parts = op_name.split("/")
    scope = next((i for i, p in enumerate(parts) if _MODEL_SCOPE.match(p)), None)
    if scope is not None:
        named, methods = _modules_and_methods(parts, scope)
        modules = [re.sub(r"_\d+$", "", p) for p in named]
        for m in modules:
            if m in _OWNING_SCOPES:
                return _OWNING_SCOPES[m]
        for m in reversed(modules):
            if m in _LAYER_SCOPES:
                return _LAYER_SCOPES[m]
        if modules and modules[-1] in _TCN_SCOPES:
            return "TCN residual / skip"
        if not modules and any(p.endswith((".analyse", ".synthesise")) for p in methods):
            return "framing / overlap-add"  # the STFT front end: framing, FFTs, overlap-add
        if not modules and any(p.endswith(".global_vector") for p in methods):
            return "attention"  # the query (mean over frames) and the frames' reshape
        return "other"
    for file in files:
        for needle, family in _SOURCE_FAMILIES:
            if needle in file.replace(os.sep, "/"):
                return family
    if files:
        return "other"
    if "mix_" in op_name:
        return "mixing"
    if "jvp(" in op_name or "transpose(" in op_name:
        return "loss"
    return "other"


# ---------------------------------------------------------------------- the trace
def _exclusive_ms(events: list[dict[str, Any]]) -> list[tuple[str, float]]:
    """(op, exclusive milliseconds) of each op event: its duration less that of the op events
    nested in it on the same thread (a while loop's body ops run inside the while's event),
    so that the sum over events is thread-busy time and nothing counts twice."""
    out = []
    threads: dict[tuple, list[dict[str, Any]]] = {}
    for e in events:
        threads.setdefault((e.get("pid"), e.get("tid")), []).append(e)
    for evs in threads.values():
        evs.sort(key=lambda e: (float(e.get("ts", 0.0)), -float(e.get("dur", 0.0))))
        stack: list[list] = []  # [end, index into out]
        for e in evs:
            start, dur = float(e.get("ts", 0.0)), float(e.get("dur", 0.0))
            while stack and stack[-1][0] <= start:
                stack.pop()
            if stack:  # nested: its time is its own, not its parent's
                parent = out[stack[-1][1]]
                out[stack[-1][1]] = (parent[0], parent[1] - dur / 1e3)
            out.append((e["name"], dur / 1e3))
            stack.append([start + dur, len(out) - 1])
    return out


def _read_trace(trace_dir: str, module: str) -> list[dict[str, Any]]:
    """The XLA op events of the newest trace in ``trace_dir`` that belong to ``module`` (all
    of them when none names it: a renamed module must not empty the breakdown)."""
    files = sorted(
        glob.glob(os.path.join(trace_dir, "**", "*.trace.json.gz"), recursive=True),
        key=os.path.getmtime,
    )
    with gzip.open(files[-1]) as f:
        events = [e for e in json.load(f)["traceEvents"] if e.get("ph") == "X"]
    named = [e for e in events if "hlo_op" in (e.get("args") or {})]
    if not named:  # older traces: ops are known by their names alone
        return [e for e in events if _XLA_OP_NAME.match(e.get("name", ""))]
    ours = [e for e in named if e["args"].get("hlo_module", module) == module]
    return ours or named


def _table(d: dict[str, float], total: float) -> list[list]:
    rows = sorted(d.items(), key=lambda kv: -kv[1])
    return [[k, v, v / total if total else 0.0] for k, v in rows]


def profile_breakdown(timer: StepTimer, *, steps: int, trace_dir: str) -> dict[str, Any]:
    """Trace ``steps`` steps with jax.profiler and attribute op time to model parts, layers and
    op families.

    Each executed XLA op (fusion, dot, copy, ...) is looked up in the compiled HLO
    (:func:`hlo_ops`). XLA names a fusion after one of its ops, so forward/backward, layer and
    family attribution of fused code is approximate. Times are exclusive op time summed over
    XLA's threads ('op_ms_per_step'; independent ops run concurrently on the CPU's threads,
    an op that itself uses several threads counts once), and the profiler slows the step
    down: use the shares, not the absolute times.

    Returns:
      dict: wall_ms_per_step, op_ms_per_step, dot_share (dots and YNN/XNN matmul fusions),
      by_part / by_layer: lists of [name, ms per step, share]; by_family: one
      [family, ms per step, share, matmul GFLOP per step, GB moved per step] per FAMILIES
      entry (zeros kept; GB: :attr:`HloOp.bytes` of its executed ops); matmul_gflop_per_step,
      gb_moved_per_step; top_ops: the TOP_OPS heaviest instructions as [HLO name, family,
      op_name, ms per step, matmul GFLOP and GB moved per execution]; trace_dir; or
      {'error': ...} when the trace cannot be read (its format is not a stable API).
    """
    text = timer.compiled.as_text()
    try:
        ops = hlo_ops(text)
    except (ValueError, KeyError, IndexError, RecursionError):  # the text is no stable API
        ops = {}  # every op then counts as '(no metadata)' / 'other'
    module = text.split(None, 2)[1].rstrip(",") if text.startswith("HloModule") else ""
    os.makedirs(trace_dir, exist_ok=True)
    t0 = time.perf_counter()
    with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
        timer.time(steps, 0)
    wall = time.perf_counter() - t0
    try:
        events = _read_trace(trace_dir, module)
    except (IndexError, OSError, ValueError, KeyError) as e:
        return {"error": f"cannot read the trace in {trace_dir}: {e}", "trace_dir": trace_dir}
    by_part: dict[str, float] = {}
    by_layer: dict[str, float] = {}
    family_ms = dict.fromkeys(FAMILIES, 0.0)
    family_flops = dict.fromkeys(FAMILIES, 0.0)
    family_bytes = dict.fromkeys(FAMILIES, 0.0)
    per_op: dict[str, float] = {}
    total = dots = 0.0
    for name, ms in _exclusive_ms(events):
        ms /= steps
        total += ms
        if name.startswith(("dot", "ynn", "xnn", "onednn")):
            dots += ms
        op = ops.get(name)
        if op is None or not op.op_name:
            part, layer, direction = "(no metadata)", "-", "?"
        else:
            part, layer, direction = op_areas(op.op_name)
        by_part[part] = by_part.get(part, 0.0) + ms
        key = f"{part}/{layer} {direction}"
        by_layer[key] = by_layer.get(key, 0.0) + ms
        family = op_family(op.op_name, op.files) if op is not None else "other"
        per_op[name] = per_op.get(name, 0.0) + ms
        family_ms[family] += ms
        if op is not None:
            family_flops[family] += op.matmul_flops / steps
            family_bytes[family] += op.bytes / steps
    by_family = [
        [
            f,
            family_ms[f],
            family_ms[f] / total if total else 0.0,
            family_flops[f] / 1e9,
            family_bytes[f] / 1e9,
        ]
        for f in FAMILIES
    ]
    top_ops = []
    for name, ms in sorted(per_op.items(), key=lambda kv: -kv[1])[:TOP_OPS]:
        op = ops.get(name, HloOp("", (), 0.0))
        family = op_family(op.op_name, op.files)
        top_ops.append([name, family, op.op_name, ms, op.matmul_flops / 1e9, op.bytes / 1e9])
    return {
        "wall_ms_per_step": wall * 1e3 / steps,
        "op_ms_per_step": total,
        "dot_share": dots / total if total else 0.0,
        "by_part": _table(by_part, total),
        "by_layer": _table(by_layer, total),
        "by_family": by_family,
        "matmul_gflop_per_step": sum(family_flops.values()) / 1e9,
        "gb_moved_per_step": sum(family_bytes.values()) / 1e9,
        "top_ops": top_ops,
        "trace_dir": trace_dir,
    }
