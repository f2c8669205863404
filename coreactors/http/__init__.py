"""The HTTP room: the Klein app of the Rasa Core 0.12 API, authentication, error bodies,
request reading and the channels (REST webhook, callback).

Runs on the reactor thread: parses and checks requests, checks credentials, routes, and writes
answers; it never runs NLU, policies or training. It knows the actor system only through
``coreactors.actors.interface`` (``IConversations``), so its tests drive it with a fake through
treq's ``StubTreq``. Bad input becomes the JSON error body with a 4xx here, before anything
reaches a conversation.
"""
