"""Training a dialogue model from a domain, stories and a policy configuration.

``python -m coreactors.train`` and ``coreactors train core`` take the flags of
``python -m rasa_core.train``: ``-d domain.yml -s stories.md -o models/dialogue -c policies.yml
[--augmentation N] [--dump_stories]``.
"""

import argparse
import os
import sys
import time
from typing import Callable, List, Optional, Sequence

from coreactors.dialogue.domain import Domain
from coreactors.dialogue.stories import read_story_file
from coreactors.model import Model, persist_model
from coreactors.policies.ensemble import PolicyEnsemble, load_policy_config
from coreactors.policies.policy import Policy
from coreactors.training.generator import TrainingTracker, generate_trackers
from coreactors.logs import Log

log = Log(__name__)

DEFAULT_AUGMENTATION = 50


def max_history_of(policies: Sequence[Policy]) -> Optional[int]:
    histories = [p.max_history for p in policies if p.max_history]
    return max(histories) if histories else None


def load_training_trackers(domain: Domain, stories: str, policies: Sequence[Policy],
                           augmentation_factor: int = DEFAULT_AUGMENTATION
                           ) -> List[TrainingTracker]:
    steps = read_story_file(stories)
    return generate_trackers(steps, domain, augmentation_factor, max_history_of(policies) or 5)


def train_dialogue_model(domain_file: str, stories: str, output: Optional[str] = None,
                         policy_config: Optional[str] = None,
                         augmentation_factor: int = DEFAULT_AUGMENTATION,
                         progress: Optional[Callable[[int, int, float, float], None]] = None,
                         dump_stories: bool = False) -> Model:
    """Trains a model and, with ``output``, persists it there. Returns the trained model."""
    domain = Domain.load(domain_file)
    policies = load_policy_config(policy_config)
    ensemble = PolicyEnsemble(policies)
    ensemble.check_domain(domain)
    started = time.time()
    trackers = load_training_trackers(domain, stories, policies, augmentation_factor)
    log.info("Generated {trackers} training trackers in {duration:.2f} s.",
             trackers=len(trackers), duration=time.time() - started)
    ensemble.train(trackers, domain, progress=progress)
    fingerprint = None
    if output:
        fingerprint = persist_model(output, domain, ensemble)
        if dump_stories:
            with open(os.path.join(output, "stories.md"), "w", encoding="utf-8") as f:
                for tracker in trackers:
                    f.write(tracker.export_stories() + "\n")
    return Model(domain, ensemble, None, fingerprint, output)


class ProgressBar:
    """Prints training progress of the neural policy on one terminal line."""

    def __init__(self, stream=sys.stderr) -> None:
        self.stream = stream
        self.started = time.time()
        self.last_line: Optional[str] = None

    def __call__(self, epoch: int, epochs: int, loss: float, accuracy: float) -> None:
        line = "NeuralPolicy epoch {:>4}/{:<4} loss {:.4f} acc {:.3f} ({:.1f} s)".format(
            epoch, epochs, loss, accuracy, time.time() - self.started)
        self.last_line = line
        if self.stream.isatty():
            width = 30
            done = int(width * epoch / max(epochs, 1))
            self.stream.write("\r{} [{}{}]".format(line, "#" * done, "." * (width - done)))
            if epoch >= epochs:
                self.stream.write("\n")
        elif epoch == 1 or epoch % 10 == 0 or epoch >= epochs:
            # Logs and CI: a line now and then rather than a carriage-return animation.
            self.stream.write(line + "\n")
            self.last_line = None
        self.stream.flush()

    def finish(self) -> None:
        """Ends the display (training may stop early, before the last epoch)."""
        if self.stream.isatty():
            self.stream.write("\n")
        elif self.last_line:
            self.stream.write(self.last_line + " (stopped early: converged)\n")
        self.last_line = None
        self.stream.flush()


def add_core_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-d", "--domain", required=True, help="domain file (domain.yml)")
    parser.add_argument("-s", "--stories", required=True,
                        help="story file or folder of story files")
    parser.add_argument("-o", "--out", required=True, help="folder to write the model to")
    parser.add_argument("-c", "--config", default=None,
                        help="policy configuration (policies.yml); default: the packaged one")
    parser.add_argument("--augmentation", type=int, default=DEFAULT_AUGMENTATION,
                        help="how many stories to glue together per augmentation round "
                             "(0 turns augmentation off; default %(default)s)")
    parser.add_argument("--dump_stories", action="store_true",
                        help="also write the training trackers as stories.md into the model")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress output")


def run_core_training(args: argparse.Namespace) -> int:
    progress = None if args.quiet else ProgressBar()
    started = time.time()
    model = train_dialogue_model(args.domain, args.stories, args.out, args.config,
                                 args.augmentation, progress, args.dump_stories)
    if progress is not None:
        progress.finish()
    if not args.quiet:
        print("Trained the dialogue model in {:.1f} s: {} (fingerprint {})".format(
            time.time() - started, args.out, model.fingerprint))
    return 0


