"""coreactors: a dialogue server that speaks the Rasa Core 0.12 HTTP API, built as an actor system."""

__version__ = "0.1.0"

# The Rasa Core API version we speak; clients and action servers see this.
RASA_CORE_VERSION = "0.12.4"
MINIMUM_COMPATIBLE_VERSION = "0.12.0"
