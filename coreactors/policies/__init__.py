"""The policies room: from a tracker's states to the next action and its confidence.

Owns the featurizers, the policies of Rasa Core 0.12 (memoization, augmented memoization,
neural, fallback, two-stage fallback, form, mapping), the ensemble that picks among them, their
remembered answers and their folders on disk.

Pure: no threads, no reactor, no I/O but their model folders. Trained before serving, loaded off
the reactor, then shared by every worker thread, so their memories change in single dict
operations and are bounded. Imports ``dialogue/`` and nothing of ``nlu/``, ``actions/``,
``training/``, ``processor`` or ``model``, nor anything of the server (tests/test_architecture.py).
"""
