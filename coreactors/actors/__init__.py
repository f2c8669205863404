"""The actor system: one conversation actor per sender id, a supervisor, the model watcher."""
