"""The Klein app the API's routes are registered on."""

from typing import Optional

from klein import Klein

from coreactors import fastpaths
from coreactors.fastpaths.klein_routing import RoutingKlein


def klein_app(fast: Optional[bool] = None) -> Klein:
    """A new Klein app: one whose URL map remembers matches (``remembered_routes``, see
    ``coreactors.fastpaths.klein_routing``) or Klein's own; ``fast`` None asks the switch."""
    return RoutingKlein() if fastpaths.choose("remembered_routes", fast) else Klein()


__all__ = ["klein_app"]
