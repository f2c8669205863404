"""The training room: making and judging models, for the CLI and the evaluation endpoint.

Owns training trackers from stories (checkpoints, augmentation), dialogue training, NLU
training and evaluation, story evaluation (replaying test stories through the message loop) and
the metrics they report.

Pure: no threads, no reactor; reads and writes the files it is given. Runs in the CLI's process,
at start-up for the default bot, and for ``POST /evaluate`` on a worker thread. May import every
pure room (``dialogue/``, ``nlu/``, ``policies/``, ``processor``, ``model``) and nothing of the
server (tests/test_architecture.py).
"""
