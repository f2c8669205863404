"""The ``coreactors`` command: init, train, evaluate and a terminal shell.

``coreactors train core`` and ``python -m coreactors.train`` take ``rasa_core.train``'s flags;
``coreactors evaluate`` those of ``rasa_core.evaluate``; ``coreactors train nlu`` those of
``rasa_nlu.train`` and ``coreactors evaluate nlu`` those of ``rasa_nlu.evaluate``. ``coreactors init DIR`` writes the
embedded default bot's training data to a folder, as a starting point.
"""

import argparse
import logging
import os
import shutil
import sys
from typing import List, Optional

from coreactors import __version__
from coreactors.training import nlu as nlu_training
from coreactors.training import train as core_train

from coreactors.default_bot import DEFAULT_BOT_DIR


def _add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-d", "--core", required=True, help="trained dialogue model folder")
    parser.add_argument("-s", "--stories", required=True, help="test story file or folder")
    parser.add_argument("-o", "--output", default="results",
                        help="folder for failed_stories.md (default %(default)s)")
    parser.add_argument("--e2e", "--end-to-end", dest="e2e", action="store_true",
                        help="stories are end-to-end (* intent: text); check NLU too")
    parser.add_argument("--fail_on_prediction_errors", action="store_true",
                        help="exit with status 1 when a story fails")


def _evaluate(args: argparse.Namespace) -> int:
    from coreactors.model import Model
    from coreactors.training.evaluate import evaluate_stories, write_results
    model = Model.load(args.core)
    result = evaluate_stories(model, args.stories, e2e=args.e2e)
    print(result.summary())
    path = write_results(result, args.output)
    print("Failed stories written to {}".format(path))
    if args.fail_on_prediction_errors and result.failed_stories:
        return 1
    return 0


def _init(args: argparse.Namespace) -> int:
    os.makedirs(args.path, exist_ok=True)
    for name in sorted(os.listdir(DEFAULT_BOT_DIR)):
        target = os.path.join(args.path, name)
        if os.path.exists(target) and not args.force:
            print("{} exists; not overwriting it (use --force).".format(target))
            continue
        shutil.copyfile(os.path.join(DEFAULT_BOT_DIR, name), target)
        print("wrote {}".format(target))
    return 0


def _shell(args: argparse.Namespace) -> int:
    from coreactors.model import Model
    from coreactors.dialogue.tracker import DialogueStateTracker
    from coreactors.processor import MessageProcessor, UserMessage
    from coreactors.dialogue.events import ActionExecuted
    if args.core is None:
        from coreactors.default_bot import default_model_path
        args.core = default_model_path()
    model = Model.load(args.core)
    processor = MessageProcessor(model)
    tracker = DialogueStateTracker(args.sender, model.domain)
    tracker.update(ActionExecuted("action_listen"))
    print("Talk to the bot (/intent messages work; Ctrl-D to quit).")
    for line in sys.stdin:
        text = line.strip()
        if not text:
            continue
        result = processor.handle_message(tracker, UserMessage(text, args.sender, "cmdline"))
        for message in result.messages:
            for key in ("text", "image", "attachment"):
                if key in message:
                    print("bot: {}".format(message[key]))
            for button in message.get("buttons") or []:
                print("     [{}] -> {}".format(button.get("title"), button.get("payload")))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="coreactors", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=__version__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    parser.add_argument("-vv", "--debug", action="store_true", help="log at DEBUG level")
    commands = parser.add_subparsers(dest="command")

    init = commands.add_parser("init", help="write the default bot's domain, stories and "
                                            "policies to a folder")
    init.add_argument("path", nargs="?", default=".", help="folder (default: here)")
    init.add_argument("--force", action="store_true", help="overwrite existing files")
    init.set_defaults(func=_init)

    train = commands.add_parser("train", help="train a dialogue model")
    train_commands = train.add_subparsers(dest="what")
    core = train_commands.add_parser("core", help="train a dialogue model (the default)")
    core_train.add_core_arguments(core)
    core.set_defaults(func=core_train.run_core_training)
    nlu = train_commands.add_parser("nlu", help="train an NLU model (like rasa_nlu.train)")
    nlu_training.add_train_arguments(nlu)
    nlu.set_defaults(func=nlu_training.run_training)

    evaluate = commands.add_parser("evaluate", help="evaluate a dialogue model on test stories")
    evaluate_commands = evaluate.add_subparsers(dest="what")
    core_eval = evaluate_commands.add_parser("core", help="evaluate a dialogue model")
    _add_evaluate_arguments(core_eval)
    core_eval.set_defaults(func=_evaluate)
    nlu_eval = evaluate_commands.add_parser("nlu", help="evaluate an NLU model on test examples")
    nlu_training.add_evaluate_arguments(nlu_eval)
    nlu_eval.set_defaults(func=nlu_training.run_evaluation)

    shell = commands.add_parser("shell", help="talk to a trained model in the terminal")
    shell.add_argument("-d", "--core", default=None,
                       help="trained dialogue model folder (default: the embedded default bot)")
    shell.add_argument("--sender", default="default", help="conversation id")
    shell.set_defaults(func=_shell)
    return parser


def _normalise(argv: List[str]) -> List[str]:
    # "train" and "evaluate" default to their "core" form, as rasa_core's scripts did.
    for command in ("train", "evaluate"):
        if argv and argv[0] == command and (len(argv) == 1 or argv[1] not in ("core", "nlu")):
            if not (len(argv) > 1 and argv[1] in ("-h", "--help")):
                return [command, "core"] + argv[1:]
    return argv


def main(argv: Optional[List[str]] = None) -> int:
    argv = _normalise(list(sys.argv[1:] if argv is None else argv))
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.debug else logging.INFO if args.verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from coreactors.dialogue.domain import InvalidDomain
    from coreactors.dialogue.stories import StoryParseError
    from coreactors.policies.ensemble import InvalidPolicyConfig
    from coreactors.model import InvalidModel
    from coreactors.nlu.model import NLUConfigError
    from coreactors.nlu.training_data import TrainingDataError
    try:
        return args.func(args)
    except (InvalidDomain, StoryParseError, InvalidPolicyConfig, InvalidModel,
            TrainingDataError, NLUConfigError, OSError) as e:
        print("error: {}".format(e), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
