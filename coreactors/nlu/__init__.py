"""The NLU room: a user's text in, parse data (intent, confidence, entities) out.

Owns the training data formats of Rasa NLU 0.13 (markdown and JSON), the local model (intent
classifier, CRF entity extractor, synonyms, regexes, lookup tables: training, parsing,
persistence) and the interpreters (the ``/intent`` shorthand re-exported from
``coreactors.markup``, a Rasa NLU server over an injected HTTP client, the local model).

Pure: no threads and no network of its own. Models are trained before serving (the CLI, the
default bot), loaded off the reactor (model watcher, ``POST /model``) and then shared, read-only,
by the worker threads that parse. Knows no conversation: imports nothing from ``dialogue/``,
``policies/``, ``actions/``, ``training/``, ``processor`` or ``model``, nor anything of the
server (tests/test_architecture.py).
"""
