"""Where a step's time goes: a jax.profiler trace, with XLA's op time summed per model part.

Every executed XLA op of the trace is mapped to the ``op_name`` metadata that the compiled
HLO keeps for it (the Flax module path and the JAX transformation; ``transpose`` = backward)
and summed per model part and per layer type. The trace format is not a stable API, so a
trace that cannot be read gives ``{'error': ...}`` instead of failing the benchmark.
"""

from __future__ import annotations

import glob
import gzip
import json
import os
import re
import time
from typing import Any

import jax

from csc_jax.benchmarking.timing import StepTimer

_INSTRUCTION_META = re.compile(
    r"^\s*(?:ROOT )?%?([\w.\-]+) = .*?metadata=\{[^}]*?op_name=\"([^\"]+)\""
)
# In op_name paths the model appears inside a transformation, 'jvp(CSCModel)' or
# 'transpose(jvp(CSCModel))' (backward); then come methods ('CSCModel.bottom_up'), Flax
# submodules ('trunk', 'TCNBlock_3', 'Dense_0') and last the primitive ('mul').
_MODEL_SCOPE = re.compile(r"^[\w()]*\(([A-Z]\w*)\)+$")
_LAYER = re.compile(r"^([A-Z]\w*?)(?:_\d+)?$")
# Trace events named like an HLO instruction ('fusion.3', 'dot', 'copy-start'); the others
# are runtime and Python events.
_XLA_OP_NAME = re.compile(r"^[a-z][\w\-]*(\.\d+)?$")


def op_areas(op_name: str) -> tuple[str, str, str]:
    """(model part, layer type, 'fwd'|'bwd') of an HLO op_name, e.g.
    'jit(train_step)/transpose(jvp(CSCModel))/CSCModel.bottom_up/trunk/TCN_0/TCNBlock_3/
    GlobalLayerNorm_1/mul' -> ('trunk', 'GlobalLayerNorm', 'bwd')."""
    parts = op_name.split("/")
    scope = next((i for i, p in enumerate(parts) if _MODEL_SCOPE.match(p)), None)
    if scope is None:
        return "(outside the model: mixing, loss, optimizer)", "-", "-"
    direction = "bwd" if parts[scope].startswith("transpose(") else "fwd"
    inner = parts[scope + 1 : -1]  # the last entry is the primitive
    modules = [p for p in inner if "." not in p and "(" not in p]
    methods = [p for p in inner if "." in p]
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


def profile_breakdown(timer: StepTimer, *, steps: int, trace_dir: str) -> dict[str, Any]:
    """Trace ``steps`` steps with jax.profiler and attribute op time to model parts.

    Every executed XLA op (fusion, dot, copy, ...) of the trace is mapped to the op_name
    metadata that the compiled HLO keeps for it (the Flax module path and the JAX
    transformation: ``transpose`` = backward), then summed per model part and per layer type.
    XLA names a fusion after one of its ops, so forward/backward and layer attribution of
    fused code is approximate. 'op_ms_per_step' sums the ops' durations (an op that uses
    several threads counts once; ops that overlap count twice), and the profiler itself
    slows the step down, so use the shares, not the absolute times.

    Returns:
      dict: wall_ms_per_step, op_ms_per_step, dot_share (dots and YNN/XNN matmul fusions),
      by_part / by_layer: lists of [name, ms per step, share], trace_dir; or
      {'error': ...} when the trace cannot be read (its format is not a stable API).
    """
    hlo = timer.compiled.as_text()
    meta = {}
    for line in hlo.splitlines():
        m = _INSTRUCTION_META.match(line)
        if m:
            meta.setdefault(m.group(1), m.group(2))
    os.makedirs(trace_dir, exist_ok=True)
    t0 = time.perf_counter()
    with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
        timer.time(steps, 0)
    wall = time.perf_counter() - t0
    files = sorted(
        glob.glob(os.path.join(trace_dir, "**", "*.trace.json.gz"), recursive=True),
        key=os.path.getmtime,
    )
    try:
        with gzip.open(files[-1]) as f:
            events = [e for e in json.load(f)["traceEvents"] if e.get("ph") == "X"]
    except (IndexError, OSError, ValueError, KeyError) as e:
        return {"error": f"cannot read the trace in {trace_dir}: {e}", "trace_dir": trace_dir}
    by_part: dict[str, float] = {}
    by_layer: dict[str, float] = {}
    total = dots = 0.0
    for e in events:
        name = e.get("name", "")
        if name not in meta and not _XLA_OP_NAME.match(name):
            continue  # runtime / Python events, not XLA ops
        dur = float(e.get("dur", 0.0)) / 1e3 / steps  # ms per step
        total += dur
        if name.startswith(("dot", "ynn", "xnn", "onednn")):
            dots += dur
        part, layer, direction = (
            op_areas(meta[name]) if name in meta else ("(no metadata)", "-", "?")
        )
        by_part[part] = by_part.get(part, 0.0) + dur
        key = f"{part}/{layer} {direction}"
        by_layer[key] = by_layer.get(key, 0.0) + dur

    def table(d):
        rows = sorted(d.items(), key=lambda kv: -kv[1])
        return [[k, v, v / total if total else 0.0] for k, v in rows]

    return {
        "wall_ms_per_step": wall * 1e3 / steps,
        "op_ms_per_step": total,
        "dot_share": dots / total if total else 0.0,
        "by_part": table(by_part),
        "by_layer": table(by_layer),
        "trace_dir": trace_dir,
    }
