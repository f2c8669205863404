"""Dialogue benchmarks: training time per bot and the CPU time of one full message turn.

Trains every example bot of ``../shared/data/bots`` (or ``--data``) with the default policy
configuration, prints training time and story accuracy on its own stories, then measures the
CPU time of one turn (parse, log, predict, run utter actions until listening) for moodbot and
restaurantbot, once with memoization answering and once with only the neural policy.

    .venv/bin/python bench/dialogue.py [--data ../shared/data] [--turns 2000]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

from coreactors.dialogue.events import ActionExecuted
from coreactors.dialogue.tracker import DialogueStateTracker
from coreactors.model import Model
from coreactors.policies.ensemble import PolicyEnsemble
from coreactors.policies.neural import NeuralPolicy
from coreactors.processor import MessageProcessor, UserMessage
from coreactors.training.evaluate import evaluate_stories
from coreactors.training.train import train_dialogue_model

BOTS = [
    ("moodbot", "domain.yml", "data/stories.md"),
    ("formbot", "domain.yml", "data/stories.md"),
    ("concertbot", "domain.yml", "data/stories.md"),
    ("restaurantbot", "restaurant_domain.yml", "data/babi_stories.md"),
]

# A conversation per bot, replayed over and over: the messages a client would send.
CONVERSATIONS = {
    "moodbot": ["/greet", "/mood_unhappy", "/mood_deny", "/goodbye"],
    "restaurantbot": ["/greet", '/inform{"cuisine": "italian"}', '/inform{"location": "paris"}',
                      '/inform{"people": "six"}', '/inform{"price": "cheap"}', "/affirm",
                      "/thankyou"],
}


def turn_cpu_times(model: Model, messages, turns: int):
    """CPU seconds per turn over ``turns`` turns of fresh conversations."""
    processor = MessageProcessor(model)
    times = []
    done = 0
    conversation = 0
    while done < turns:
        tracker = DialogueStateTracker("bench-{}".format(conversation), model.domain)
        tracker.update(ActionExecuted("action_listen"))
        conversation += 1
        for text in messages:
            started = time.process_time()
            processor.handle_message(tracker, UserMessage(text, tracker.sender_id))
            times.append(time.process_time() - started)
            done += 1
    return times


def only_neural(model: Model) -> Model:
    neural = [p for p in model.policy_ensemble.policies if isinstance(p, NeuralPolicy)]
    return Model(model.domain, PolicyEnsemble(neural), None, model.fingerprint, model.path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..",
                                                       "shared", "data"))
    parser.add_argument("--turns", type=int, default=2000)
    args = parser.parse_args()
    bots_dir = os.path.join(args.data, "bots")
    if not os.path.isdir(bots_dir):
        print("skipped: no Rasa example bots at {} (pass --data)".format(bots_dir))
        return 0
    models = {}
    print("{:<15} {:>10} {:>16} {:>10}".format("bot", "train s", "stories correct",
                                               "accuracy"))
    with tempfile.TemporaryDirectory() as scratch:
        for name, domain, stories in BOTS:
            domain_path = os.path.join(bots_dir, name, domain)
            stories_path = os.path.join(bots_dir, name, stories)
            out = os.path.join(scratch, name)
            started = time.perf_counter()
            train_dialogue_model(domain_path, stories_path, out)
            elapsed = time.perf_counter() - started
            model = Model.load(out)
            models[name] = model
            result = evaluate_stories(model, stories_path)
            correct = len(result.stories) - len(result.failed_stories)
            print("{:<15} {:>10.2f} {:>10}/{:<5} {:>10.3f}".format(
                name, elapsed, correct, len(result.stories), result.story_accuracy))
        print()
        print("CPU time of one full turn (parse, predict, run utter actions), {} turns".format(
            args.turns))
        print("{:<15} {:<22} {:>10} {:>10} {:>10}".format("bot", "policies", "mean us",
                                                         "p50 us", "p99 us"))
        for name, messages in CONVERSATIONS.items():
            for label, model in (("default (memoization)", models[name]),
                                 ("neural policy only", only_neural(models[name]))):
                times = sorted(turn_cpu_times(model, messages, args.turns))
                print("{:<15} {:<22} {:>10.1f} {:>10.1f} {:>10.1f}".format(
                    name, label, 1e6 * statistics.mean(times), 1e6 * times[len(times) // 2],
                    1e6 * times[int(len(times) * 0.99)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
