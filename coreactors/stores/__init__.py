"""The store room: tracker stores, where conversations' events are kept between turns and
restarts (SQLite by default, or in memory).

A store takes a turn's events and calls back once they are durable (``base.TrackerStore``:
``append_then``, ``then``, write chains), so an actor goes on with its next message while its
last turn is written. Called from actor workers; a store's own threads (the SQLite writer and
checkpointer) get any set-up they need (CPU scheduling) from whoever builds the store. Imports
nothing of ``actors/``, ``http/``, the services or ``affinity`` (tests/test_architecture.py).
"""
