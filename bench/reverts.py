"""Turn time at turn 100 and at turn 2,000 of a conversation that falls back on every turn, and
of one that does not (the dialogue engine in a loop: no server, no store).

A message the NLU is unsure of makes the FallbackPolicy run ``action_default_fallback``, which
reverts the user's message (a rewind). Prints the median turn time around turn 100 and around
turn 2,000 of each conversation, and the speed at turn 2,000 as a share of that at turn 100.

    .venv/bin/python bench/reverts.py [--data ../shared/data]
"""

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
from typing import Any, Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))
MOOD = ["/greet", "/mood_unhappy", "/mood_deny", "/goodbye"]


def turn_times(processor: Any, domain: Any, fallback: bool, turns: int) -> List[float]:
    from coreactors.dialogue.events import ActionExecuted
    from coreactors.dialogue.tracker import DialogueStateTracker
    from coreactors.processor import UserMessage
    tracker = DialogueStateTracker("bench", domain)
    tracker.update(ActionExecuted("action_listen"))
    unsure: Dict[str, Any] = {"intent": {"name": "greet", "confidence": 0.1}, "entities": []}
    times = []
    for i in range(turns):
        message = (UserMessage("blah", "bench", parse_data=dict(unsure, text="blah"))
                   if fallback else UserMessage(MOOD[i % len(MOOD)], "bench"))
        started = time.perf_counter()
        processor.handle_message(tracker, message)
        times.append(time.perf_counter() - started)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=os.path.join(HERE, "..", "..", "shared", "data"))
    args = parser.parse_args()
    moodbot = os.path.join(args.data, "bots", "moodbot")
    if not os.path.isdir(moodbot):
        print("skipped: no moodbot at {} (pass --data)".format(moodbot))
        return 0
    from coreactors.model import Model
    from coreactors.processor import MessageProcessor
    from coreactors.training.train import train_dialogue_model
    with tempfile.TemporaryDirectory(prefix="coreactors-reverts-") as scratch:
        train_dialogue_model(os.path.join(moodbot, "domain.yml"),
                             os.path.join(moodbot, "data", "stories.md"), scratch)
        model = Model.load(scratch)
    processor = MessageProcessor(model)
    gc.freeze()
    gc.set_threshold(5_000, 10, 100)  # as the server runs (coreactors.process)
    for fallback in (True, False):
        times = turn_times(processor, model.domain, fallback, 2100)
        early = statistics.median(times[50:150]) * 1e6
        late = statistics.median(times[1950:2050]) * 1e6
        print("{:34} turn ~100: {:6.0f} us   turn ~2,000: {:6.0f} us   speed at 2,000: {:.0%}"
              .format("falls back (and rewinds) each turn" if fallback else "moodbot's stories",
                      early, late, early / late))
    return 0


if __name__ == "__main__":
    sys.exit(main())
