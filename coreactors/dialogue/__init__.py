"""The dialogue room: Rasa's vocabulary of a conversation, which every other room speaks.

Owns the domain (intents, entities, slots, actions, templates), the events (their JSON, their
story lines, their effect on a tracker), the tracker that adds one conversation's events up to
its state, template rendering, and story markdown (reading and writing).

Pure: no threads, no reactor, no I/O but the files it is asked to read. A tracker belongs to
whoever holds it (in the server, its conversation actor, on a worker thread); a domain is shared
by every worker, so what it caches changes in single dict operations. Builds on
``coreactors.markup`` and ``coreactors.logs`` only: imports nothing of ``nlu/``, ``policies/``,
``actions/``, ``training/``, ``processor`` or ``model``, nor anything of the server
(tests/test_architecture.py).
"""
