"""Abstractive answers with the packaged generator: fallback rate, checked sentences, time.

Not a test: it prints figures. For a handful of development questions (every `--every`-th of
tests/data/dev_questions.jsonl, so every language and locality is represented) it runs the
extractive answer, then the rewrite, and reports per question and overall:

- fallback: the answer came back extractive (too little passed the check), with the reason;
- sentences written by the model and kept by the checker;
- seconds for the rewrite, and to the first checked sentence (what a streaming user waits);
- with --show, every kept sentence beside the quotes it cites, for faithfulness by hand, and
  every dropped sentence with the checker's reason;
- with --keypoints, key-point coverage of `ask --by-locality` for the first question of
  tests/data/locality_keypoints.json, extractive against abstractive.

    python benchmarks/abstractive.py --index /tmp/idx --show > abstractive.txt
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from policyrag.answer.abstractive import Rewriter, index_context  # noqa: E402
from policyrag.answer.extractive import Answerer  # noqa: E402
from policyrag.answer.generate import load_generator  # noqa: E402
from policyrag.engine import Engine  # noqa: E402
from policyrag.evaluation import keypoint_coverage  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--index", default="indexes/default", help="an index of the seeds")
    ap.add_argument("--questions", type=Path, default=ROOT / "tests/data/dev_questions.jsonl")
    ap.add_argument("--every", type=int, default=5, help="take every n-th question (default 5)")
    ap.add_argument("--max-tokens", type=int, default=200)
    ap.add_argument("--show", action="store_true", help="print kept sentences and their quotes")
    ap.add_argument("--keypoints", action="store_true", help="also key-point coverage")
    ap.add_argument("--ids", default="", help="only these question ids, comma-separated")
    ap.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = ap.parse_args()

    engine = Engine(args.index)
    answerer = Answerer(engine)
    t0 = time.monotonic()
    rewriter = Rewriter(load_generator("auto"), max_tokens=args.max_tokens)
    print(f"generator {rewriter.generator().name} loaded in {time.monotonic() - t0:.1f} s")
    rows = [json.loads(line) for line in args.questions.read_text("utf-8").splitlines()
            if line.strip()][::args.every]
    if args.ids:
        wanted = set(args.ids.split(","))
        rows = [q for q in rows if q["id"] in wanted]
    results = []
    for q in rows:
        extractive = answerer.ask(q["q"])
        first: list[tuple[float, float]] = []
        start, cpu0 = time.monotonic(), time.process_time()

        def on_point(_loc, _p, s=start, c=cpu0, f=first):
            if not f:
                f.append((time.monotonic() - s, time.process_time() - c))

        answer = rewriter.rewrite(extractive, **index_context(engine.index), on_point=on_point)
        seconds, cpu = time.monotonic() - start, time.process_time() - cpu0
        check = answer.check or {"sentences_written": 0, "sentences_kept": 0}
        results.append({"id": q["id"], "lang": q["lang"], "mode": answer.mode,
                        "answered": extractive.answered,
                        "seconds": seconds, "cpu_seconds": cpu,
                        "first": first[0][0] if first else None,
                        "first_cpu": first[0][1] if first else None, **check})
        print(f"{q['id']:5} {q['lang']:8} {answer.mode:12} kept {check['sentences_kept']}/"
              f"{check['sentences_written']}  {seconds:5.1f} s (cpu {cpu:4.1f})  first sentence "
              + (f"{first[0][0]:.1f} s (cpu {first[0][1]:.1f})" if first else "-"), flush=True)
        if answer.notice:
            print(f"      note: {answer.notice[:300]}")
        if args.show:
            print(f"      Q: {q['q']}")
            for checked in rewriter.last_checks:
                for sentence, reason in checked.rejected:
                    print(f"      x {sentence}  <- {reason}")
        if args.show and answer.mode == "abstractive":
            for p in answer.localities[0].points:
                print(f"      > {p.text}")
                for c in p.citations:
                    print(f"          “{' '.join(c.quote.split())[:160]}”")
    figures = summarise(results)
    if args.keypoints:
        figures.update(coverage(answerer, rewriter, args.show))
    if args.json:
        args.json.write_text(json.dumps({**figures, "per_question": results}, indent=1), "utf-8")
    return 0


def summarise(results: list[dict]) -> dict:
    """Figures over the questions the reports answer (an off-topic question is not rewritten)."""
    skipped = sum(not r["answered"] for r in results)
    results = [r for r in results if r["answered"]]
    n = len(results)
    fell_back = sum(r["mode"] != "abstractive" for r in results)
    written = sum(r["sentences_written"] for r in results)
    kept = sum(r["sentences_kept"] for r in results)
    secs = [r["seconds"] for r in results]
    cpus = [r["cpu_seconds"] for r in results]
    firsts = [r["first"] for r in results if r["first"] is not None]
    first_cpus = [r["first_cpu"] for r in results if r["first_cpu"] is not None]
    print(f"\n{n} questions: fallback {fell_back}/{n} ({fell_back / n:.0%}); sentences kept "
          f"{kept}/{written} ({kept / max(written, 1):.0%}); seconds per answer median "
          f"{statistics.median(secs):.1f}, max {max(secs):.1f}; first checked sentence median "
          + (f"{statistics.median(firsts):.1f} s" if firsts else "-")
          + f"\nCPU seconds of this process, all its threads (POLICYRAG_LLM_THREADS=1 makes them"
          f" about the time on an idle machine): per answer median {statistics.median(cpus):.1f}, max "
          f"{max(cpus):.1f}; to the first checked sentence median "
          + (f"{statistics.median(first_cpus):.1f}" if first_cpus else "-")
          + (f" ({skipped} off-topic questions not rewritten)" if skipped else ""))
    return {"questions": n, "fallback_rate": fell_back / n, "sentences_written": written,
            "sentences_kept": kept, "seconds_median": statistics.median(secs),
            "seconds_max": max(secs),
            "first_sentence_median": statistics.median(firsts) if firsts else None,
            "cpu_seconds_median": statistics.median(cpus),
            "first_sentence_cpu_median": statistics.median(first_cpus) if first_cpus else None}


def coverage(answerer: Answerer, rewriter: Rewriter, show: bool = False) -> dict:
    data = json.loads((ROOT / "tests/data/locality_keypoints.json").read_text("utf-8"))
    question = data["questions"][0]
    extractive = answerer.ask(question, by_locality=True)
    start, cpu0 = time.monotonic(), time.process_time()
    firsts: dict[str, float] = {}
    abstractive = rewriter.rewrite(
        extractive, **index_context(answerer.engine.index),
        on_point=lambda loc, _p: firsts.setdefault(loc or "", time.process_time() - cpu0))
    seconds, cpu = time.monotonic() - start, time.process_time() - cpu0
    out = {"by_locality_seconds": seconds, "by_locality_cpu_seconds": cpu,
           "by_locality_first_cpu": min(firsts.values(), default=None),
           "by_locality_fallbacks": sum(
        1 for loc in abstractive.localities if loc.points and "[" not in loc.points[0].text)}
    for name, answer in (("extractive", extractive), ("abstractive", abstractive)):
        cov = keypoint_coverage(answer.to_dict(), data)
        out[f"keypoint_coverage_{name}"] = cov["macro"]
        print(f"key-point coverage, {name:11} ({answer.mode}): macro {cov['macro']:.2f} "
              f"micro {cov['micro']:.2f}")
    print(f"by-locality rewrite of {len(extractive.localities)} localities: {seconds:.1f} s "
          f"(cpu {cpu:.1f}, first sentence after cpu {out['by_locality_first_cpu']}); "
          f"notice: {abstractive.notice}")
    if show:
        for loc in abstractive.localities:
            if abstractive.mode == "abstractive" and loc.points and "[" in loc.points[0].text:
                print(f"  == {loc.locality}: " + " ".join(p.text for p in loc.points))
        for checked in rewriter.last_checks:
            for sentence, reason in checked.rejected:
                print(f"      x {sentence}  <- {reason}")
    return out


if __name__ == "__main__":
    sys.exit(main())
