"""twistd dropin: ``twistd coreactors`` (kept tiny; the service loads lazily)."""

from twisted.application.service import ServiceMaker

coreactors = ServiceMaker(
    "coreactors", "coreactors.tap",
    "A dialogue server speaking the Rasa Core 0.12 HTTP API, built on actors.",
    "coreactors")
