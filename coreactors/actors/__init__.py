"""The actor room: conversations as pykka actors, and what routes requests to them.

Owns the conversations while the server runs. ``agent.Agent`` is what the HTTP layer talks to
(``interface.IConversations``): conversation requests go to the ``supervisor.Supervisor``
(routing, start, passivation, eviction, restart, model hand-over), which sends each as a typed
message (``messages``) to the conversation's ``conversation.ConversationActor``; requests about
the model go to ``model_requests.ModelRequests``. Answers travel back through ``reply`` to the
reactor thread. ``model_watcher`` pulls models from a model server (``model_server``).

Threads: the Supervisor, the Agent and the watcher's service live on the reactor thread and
never wait; actors run on the ``worker_pool``'s threads and call the store, NLU and policies
there; Twisted is reached from a worker only through ``blockingCallFromThread`` (the action and
NLU clients) or the reply bridge. Imports the pure rooms and ``stores/``, never ``http/``
(tests/test_architecture.py).
"""
