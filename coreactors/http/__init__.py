"""The HTTP side: the Klein app of the Rasa Core API, auth, error bodies and channels."""
