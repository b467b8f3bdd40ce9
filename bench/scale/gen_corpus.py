"""Generate a synthetic corpus of failed multi-agent runs, derived from the real Who&When logs.

Each synthetic trace is a deterministic mutation of one real trace (steps dropped, duplicated or
swapped with another run's step of the same agent, numbers changed), so attribution methods see
realistic lengths, agents and wording. Nothing is committed: the corpus goes into a store you name.

    python bench/scale/gen_corpus.py --n 20000 --store /tmp/scale.duckdb
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import time
from collections.abc import Iterable, Iterator
from functools import lru_cache
from itertools import islice
from pathlib import Path
from typing import Any

import msgspec

from attrib.paths import who_and_when_dir
from attrib.readers import read_path
from attrib.trace import Label, Trace

_NUM = re.compile(r"\b\d+(?:\.\d+)?\b")


@lru_cache(maxsize=1)
def real_traces() -> tuple[Trace, ...]:
    """All Who&When traces, both subsets, in file order."""
    files = sorted(who_and_when_dir().glob("*/*.json"))
    if not files:
        raise SystemExit(f"no Who&When logs under {who_and_when_dir()}")
    return tuple(t for p in files for t in read_path(p))


def _mutate(base: Trace, donor: Trace, i: int, rng: random.Random) -> Trace:
    steps = list(base.steps)
    mistake = base.label.mistake_step if base.label else None
    op = rng.random()
    if len(steps) > 2 and op < 0.3:  # drop a step after the first (shifts the mistake when before it)
        k = rng.randrange(1, len(steps))
        if k != mistake:
            del steps[k]
            if mistake is not None and k < mistake:
                mistake -= 1
    elif op < 0.55:  # duplicate a step (a retry)
        k = rng.randrange(len(steps))
        steps.insert(k + 1, steps[k])
        if mistake is not None and k < mistake:
            mistake += 1
    elif op < 0.8:  # swap in a step of the same agent from another run
        same = [d for d in donor.steps if d.agent in {s.agent for s in steps}]
        if same:
            d = rng.choice(same)
            ks = [k for k, s in enumerate(steps) if s.agent == d.agent and k != mistake]
            if ks:
                k = rng.choice(ks)
                steps[k] = msgspec.structs.replace(steps[k], content=d.content)
    shift = rng.randint(1, 97)
    steps = [
        msgspec.structs.replace(
            s,
            index=k,
            parents=(),
            content=_NUM.sub(lambda m: str(int(float(m.group())) + shift), s.content)
            if rng.random() < 0.3
            else s.content,
        )
        for k, s in enumerate(steps)
    ]
    label = None
    if base.label is not None and mistake is not None:
        label = Label(mistake_agent=steps[mistake].agent, mistake_step=mistake, reason=base.label.reason)
    return msgspec.structs.replace(
        base,
        id=f"synth-{i:06d}",
        source_format="synthetic",
        steps=tuple(steps),
        agents=(),
        label=label,
        metadata={**base.metadata, "synthetic_from": base.id},
    )


def synthetic_traces(n: int, seed: int = 0) -> Iterator[Trace]:
    """``n`` synthetic traces, the same for the same ``seed``; streamed, so memory does not grow with n."""
    real = real_traces()
    for i in range(n):
        rng = random.Random(seed * 1_000_003 + i)
        base = real[i % len(real)]
        donor = real[rng.randrange(len(real))]
        t = _mutate(base, donor, i, rng)
        yield Trace(**{f: getattr(t, f) for f in t.__struct_fields__})  # re-run __post_init__ (agents)


def add_traces(store: Any, traces: Iterable[Trace], chunk: int = 2000) -> None:
    """Upsert ``traces`` into an open store, ``chunk`` per transaction (streamed)."""
    it = iter(traces)
    while True:
        batch = list(islice(it, chunk))
        if not batch:
            return
        store.upsert_traces(batch)


def write_corpus(store_path: str | Path, n: int, seed: int = 0, chunk: int = 2000) -> int:
    """Write ``n`` synthetic traces into the store at ``store_path``; returns how many it holds after."""
    from attrib.store import open_store

    store = open_store(str(store_path))
    try:
        add_traces(store, synthetic_traces(n, seed), chunk)
        return store.count_traces()
    finally:
        store.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=20_000, help="number of synthetic traces (default 20000)")
    ap.add_argument("--store", required=True, help="DuckDB store to write (created if missing)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    total = write_corpus(a.store, a.n, a.seed)
    print(f"wrote {a.n} synthetic traces to {a.store} ({total} in store) in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
