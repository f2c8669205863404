"""Benchmark of the local NLU model on the NLU evaluation corpora.

Trains on each corpus's ``train.md``, evaluates on its ``test.md`` and prints,
per corpus: examples, intents, training time, intent accuracy, intent F1
(support-weighted over the gold intents), and entity precision / recall / F1
(micro-averaged; an entity counts when its type and covered text match
exactly).  Then it measures parse latency on a model trained on moodbot's
``nlu.md``.

Usage: .venv/bin/python bench/nlu_corpora.py [--data ../shared/data]
"""

import argparse
import os
import statistics
import sys
import time
from typing import Dict, List, Optional, Tuple

# Single-threaded BLAS: the matrices here are small, and a multi-threaded
# BLAS on a busy machine spends its time waiting for its own threads (training
# times vary several-fold from run to run).  Must be set before numpy loads.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from coreactors.nlu.model import NLUConfig, NLUModel  # noqa: E402
from coreactors.nlu.training_data import load_data  # noqa: E402
from coreactors.training.nlu import evaluate_nlu  # noqa: E402

CORPORA = ("ChatbotCorpus", "AskUbuntuCorpus", "WebApplicationsCorpus")
TARGET_F1 = {"ChatbotCorpus": 0.98, "AskUbuntuCorpus": 0.92, "WebApplicationsCorpus": 0.84}
TRAIN_TIME_LIMIT = 3.0
LATENCY_LIMIT_US = 300.0
LATENCY_PARSES = 3000


def run_corpus(folder: str, config: NLUConfig) -> Dict[str, float]:
    train = load_data(os.path.join(folder, "train.md"))
    test = load_data(os.path.join(folder, "test.md"))
    start = time.perf_counter()
    model = NLUModel.train(train, config)
    train_time = time.perf_counter() - start

    result = evaluate_nlu(model, test.examples)
    return {
        "train_examples": len(train.examples),
        "test_examples": len(test.examples),
        "intents": len(train.intents),
        "train_time": train_time,
        "accuracy": result.intents.accuracy,
        "intent_f1": result.intents.f1,
        "entity_p": result.entities.precision,
        "entity_r": result.entities.recall,
        "entity_f1": result.entities.f1,
    }


def parse_latency(path: str, config: NLUConfig) -> Tuple[float, float]:
    data = load_data(path)
    model = NLUModel.train(data, config)
    texts = [m.text for m in data.examples] + ["I am feeling very good today", "see you tomorrow", "nope"]
    for text in texts:  # warm-up
        model.parse(text)
    samples = []
    for i in range(LATENCY_PARSES):
        text = texts[i % len(texts)]
        t0 = time.perf_counter()
        model.parse(text)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1e6, sorted(samples)[int(0.95 * len(samples))] * 1e6


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data"), help="folder holding nlu/ and bots/")
    args = parser.parse_args(argv)

    nlu_dir = os.path.join(args.data, "nlu")
    if not os.path.isdir(nlu_dir):
        print("SKIPPED: no corpus folder at {} (pass --data)".format(nlu_dir))
        return 0
    config = NLUConfig()

    header = "{:<22} {:>5} {:>5} {:>4} {:>7} {:>6} {:>9} {:>6} {:>6} {:>6}  {}".format(
        "corpus", "train", "test", "int", "train_s", "acc", "intent_F1", "ent_P", "ent_R", "ent_F1", "target")
    print(header)
    print("-" * len(header))
    all_ok = True
    for name in CORPORA:
        folder = os.path.join(nlu_dir, name)
        if not os.path.isdir(folder):
            print("{:<22} SKIPPED: {} missing".format(name, folder))
            continue
        r = run_corpus(folder, config)
        ok = r["intent_f1"] >= TARGET_F1[name] and r["train_time"] < TRAIN_TIME_LIMIT
        all_ok &= ok
        print("{:<22} {:>5} {:>5} {:>4} {:>7.3f} {:>6.3f} {:>9.4f} {:>6.3f} {:>6.3f} {:>6.3f}  F1>={} {}".format(
            name, r["train_examples"], r["test_examples"], r["intents"], r["train_time"], r["accuracy"],
            r["intent_f1"], r["entity_p"], r["entity_r"], r["entity_f1"], TARGET_F1[name],
            "ok" if ok else "MISSED"))

    moodbot = os.path.join(args.data, "bots", "moodbot", "data", "nlu.md")
    if os.path.isfile(moodbot):
        median_us, p95_us = parse_latency(moodbot, config)
        ok = median_us < LATENCY_LIMIT_US
        all_ok &= ok
        print()
        print("moodbot parse latency: median {:.1f} us/message, p95 {:.1f} us ({} parses; "
              "target < {:.0f} us) {}".format(median_us, p95_us, LATENCY_PARSES, LATENCY_LIMIT_US,
                                              "ok" if ok else "MISSED"))
    else:
        print("moodbot parse latency: SKIPPED ({} missing)".format(moodbot))
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
