"""Speed of one `attrib analyze` and of start-up: Who&When's longest log (Hand-Crafted 46, 130 steps), one core.

Measures, in CPU seconds on one core (the process is pinned to core 0 where the OS allows it):
- the default method on the 130-step trace, first call in the process (ranker file loaded, features computed) and
  warm (median of 20), against the flow-graph method (a rule, the cheapest method) on the same trace in the same run;
- the same in a fresh process (imports and the ranker file included);
- ``import attrib`` and ``attrib --help`` in fresh processes (median of 5);
- a 20,000-step run (the 130 steps repeated) in a fresh process: CPU seconds and peak memory, against the
  flow-graph rule on the same run, so a cost that grows faster than the run shows up (session 11: the step
  Shapley's exact quadrature took 89 s and 5 GB there).
Writes bench/results/analyze.json. Goals (issue #10): a 130-step trace in < 1 s on one core; ``import attrib`` and
``attrib --help`` in < 1 s.

    .venv/bin/python bench/analyze/run.py
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from attrib.paths import who_and_when_dir  # noqa: E402

TRACE = who_and_when_dir("hand") / "46.json"
ONE_CORE = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _core() -> int | None:
    """The core this benchmark runs on (the lowest one allowed), or None where the OS cannot pin."""
    return min(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None


def _pin(core: int | None) -> None:
    if core is not None:
        os.sched_setaffinity(0, {core})


def _cpu(fn: Callable[[], object]) -> float:
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


def _timed(code: str, core: int | None) -> tuple[float, float]:
    """CPU seconds (user + sys) and peak MB of one fresh Python process running ``code``, pinned to ``core`` where
    ``taskset`` exists."""
    pin = ["taskset", "-c", str(core)] if shutil.which("taskset") and core is not None else []
    r = subprocess.run([*pin, "/usr/bin/time", "-f", "%U %S %M", sys.executable, "-c", code], capture_output=True,
                       text=True, env={**os.environ, **ONE_CORE}, cwd=ROOT, check=True)
    user, system, kb = r.stderr.strip().splitlines()[-1].split()
    return float(user) + float(system), int(kb) / 1024


def _fresh(code: str, core: int | None, n: int = 5) -> float:
    """Median CPU seconds (user + sys) of a fresh Python process running ``code`` on ``core``."""
    return statistics.median(_timed(code, core)[0] for _ in range(n))


LONG_STEPS = 20_000


def _long_run(core: int | None, tmp: Path) -> dict[str, float]:
    """CPU seconds and peak MB of one fresh-process analysis of a LONG_STEPS-step run, default method and rule."""
    raw = orjson.loads(TRACE.read_bytes())
    hist = raw["history"]
    raw["history"] = [hist[i % len(hist)] for i in range(LONG_STEPS)]
    return _both_methods(raw, tmp / "long_run.json", core)


def _both_methods(raw: dict[str, object], path: Path, core: int | None) -> dict[str, float]:
    """``raw`` written to ``path``, then CPU seconds and peak MB of one fresh-process analysis of it by the default
    method and by the flow-graph rule (the baseline measured in the same run)."""
    path.write_bytes(orjson.dumps(raw))
    out: dict[str, float] = {}
    for name, method in (("default", "learned"), ("flow_graph", "flow-graph")):
        code = f"from attrib import analyze, load_trace; analyze(load_trace({str(path)!r}), {method!r})"
        out[f"{name}_s"], out[f"{name}_peak_mb"] = _timed(code, core)
    return out


MANY_AGENTS, MANY_AGENT_STEPS = 200, 5_000


def _many_agents(core: int | None, tmp: Path) -> dict[str, float]:
    """CPU seconds of one fresh-process analysis of a MANY_AGENT_STEPS-step run of MANY_AGENTS agents (hand-offs are
    searched by every agent's name in every step: this was a minute of name searches before the first-word check)."""
    raw = orjson.loads(TRACE.read_bytes())
    hist = raw["history"]
    raw["history"] = [{**hist[i % len(hist)], "name": f"Agent_{i % MANY_AGENTS}", "role": "assistant"}
                      for i in range(MANY_AGENT_STEPS)]
    for key in ("mistake_agent", "mistake_step", "mistake_reason"):  # its agents are renamed: no label
        raw.pop(key, None)
    return _both_methods(raw, tmp / "many_agents.json", core)


def main() -> None:
    load_before = os.getloadavg()
    os.environ.update(ONE_CORE)
    core = _core()
    _pin(core)
    from attrib.methods import analyze
    from attrib.readers import load_trace

    trace = load_trace(TRACE)
    first_s = _cpu(lambda: analyze(trace))
    warm_s = statistics.median(_cpu(lambda: analyze(trace)) for _ in range(20))
    analyze(trace, "flow-graph")
    rule_s = statistics.median(_cpu(lambda: analyze(trace, "flow-graph")) for _ in range(20))
    verdict = analyze(trace)
    fresh_s = _fresh(f"from attrib import analyze, load_trace; analyze(load_trace({str(TRACE)!r}))", core)
    import_s = _fresh("import attrib", core)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        long_run = _long_run(core, Path(tmp))
        many = _many_agents(core, Path(tmp))
    help_s = _fresh("import sys; sys.argv = ['attrib', '--help']\ntry:\n    from attrib.cli import main; main()\n"
                    "except SystemExit:\n    pass", core)
    out = {
        "benchmark": "analyze",
        "units": "CPU seconds on one core (medians); ratio against the flow-graph rule on the same trace, same run",
        "trace": {"file": "Who&When Hand-Crafted/46.json", "steps": trace.n_steps},
        "analyze_first_s": first_s,
        "analyze_warm_s": warm_s,
        "analyze_fresh_process_s": fresh_s,
        "flow_graph_warm_s": rule_s,
        "ratio_warm_to_flow_graph": warm_s / rule_s,
        "import_attrib_s": import_s,
        "help_s": help_s,
        "long_run": {"steps": LONG_STEPS, **long_run,
                     "ratio_to_flow_graph": long_run["default_s"] / long_run["flow_graph_s"]},
        "many_agents": {"steps": MANY_AGENT_STEPS, "agents": MANY_AGENTS, **many,
                        "ratio_to_flow_graph": many["default_s"] / many["flow_graph_s"]},
        "verdict": {"step": verdict.step, "agent": verdict.agent, "confidence": verdict.confidence},
        "goals": {"analyze_130_steps_s": 1.0, "import_and_help_s": 1.0,
                  "met": max(first_s, fresh_s) < 1.0 and max(import_s, help_s) < 1.0},
        "machine": {"loadavg_before": load_before, "loadavg_after": os.getloadavg(), "core": core},
    }
    path = ROOT / "bench" / "results" / "analyze.json"
    path.write_bytes(orjson.dumps(out, option=orjson.OPT_INDENT_2))
    print(f"130-step trace: first {first_s:.3f} s, warm {warm_s:.3f} s ({warm_s / rule_s:.1f}x the flow-graph rule), "
          f"fresh process {fresh_s:.2f} s; {LONG_STEPS:,} steps {long_run['default_s']:.1f} s, "
          f"{long_run['default_peak_mb']:.0f} MB ({long_run['default_s'] / long_run['flow_graph_s']:.1f}x the rule); "
          f"{MANY_AGENT_STEPS:,} steps of {MANY_AGENTS} agents {many['default_s']:.1f} s; "
          f"import attrib {import_s:.2f} s, attrib --help {help_s:.2f} s -> {path}")


if __name__ == "__main__":
    main()
