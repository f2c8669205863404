"""The actions room: what the bot does once the policies have chosen.

Owns the action base class, the default actions (listen, restart, fallback, the two-stage
fallback's questions, form deactivation), template utterances, the dispatcher that collects a
turn's messages, and the action-server protocol for custom actions (request and answer only: the
HTTP call is a client passed in).

Pure: no threads, no I/O of its own; actions run inside a turn, on the thread of the conversation
running it. Imports ``dialogue/`` and nothing of ``nlu/``, ``policies/``, ``training/``,
``processor`` or ``model``, nor anything of the server (tests/test_architecture.py).
"""
