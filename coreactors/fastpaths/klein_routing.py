"""Fast path through Klein's and werkzeug's private names: routing that remembers matches.

``remembered_routes`` (``RoutingKlein``, ``RememberingMap``, ``RememberingMapAdapter``)
    Sets Klein's private ``_url_map`` (the werkzeug ``Map`` Klein routes with; Klein's
    ``url_map`` property only reads it) and swaps the class of the ``MapAdapter`` werkzeug's
    ``Map.bind`` returns (``adapter.__class__ =``), whose ``match`` and attributes
    (``server_name``, ``subdomain``, ``script_name``, ``path_info``, ``default_method``,
    ``websocket``) it reads. Klein asks werkzeug's URL map to match every request afresh: a
    walk through the map's state machine in Python, which also leaves a reference cycle
    behind each time (a recursive closure) for the collector to free. Requests keep arriving
    for the same few URLs (a webhook, a conversation's routes), so the adapters remember each
    successful match, keyed by everything werkzeug matches on: the host, the path, the method
    and whether it is a websocket request. A miss, and every failed match (404, 405, a
    redirect), goes through werkzeug as before; the rules of a map never change once the app
    serves. Buys: webhook turns/s +2.8% to +6.9% (worst +2.8%), the server's CPU per turn
    -2.3% to -6.1% (bench/fast_paths.py, ten runs of alternating windows on 7 December 2026;
    its A/A row read -1.5% to +4.7%); binding and matching the webhook's URL alone, in a
    loop, 5.4 -> 2.2 us. Off: ``COREACTORS_FAST_PATHS=-remembered_routes`` (a plain
    ``Klein``).
"""

from typing import Any, Dict, Mapping, Optional, Tuple

from klein import Klein
from werkzeug.routing import Map, MapAdapter

# Distinct URLs remembered per map; conversation routes carry the sender id in the path, so
# the set is unbounded: when it is full it starts over.
MATCHES_REMEMBERED = 4096

_Match = Tuple[Any, Dict[str, Any]]


class RememberingMapAdapter(MapAdapter):
    """A bound map whose plain ``match()`` (the request's own path and method) is remembered."""

    map: "RememberingMap"

    def match(  # type: ignore[override]
            self, path_info: Optional[str] = None, method: Optional[str] = None,
            return_rule: bool = False, query_args: Optional[Any] = None,
            websocket: Optional[bool] = None) -> Tuple[Any, Mapping[str, Any]]:
        if path_info is not None or method is not None or websocket is not None:
            return super().match(path_info, method, return_rule, query_args, websocket)
        key = (self.server_name, self.subdomain, self.script_name, self.path_info,
               self.default_method, self.websocket)
        known = self.map.matches.get(key)
        if known is None:
            rule, values = super().match(return_rule=True, query_args=query_args)
            known = (rule, dict(values))
            matches = self.map.matches
            if len(matches) >= MATCHES_REMEMBERED:
                matches.clear()
            matches[key] = known
        rule, values = known
        return (rule if return_rule else rule.endpoint), dict(values)


class RememberingMap(Map):
    """A werkzeug ``Map`` binding ``RememberingMapAdapter``s; adding a rule forgets all."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.matches: Dict[Tuple[Any, ...], _Match] = {}
        super().__init__(*args, **kwargs)

    def add(self, rule_factory: Any) -> None:
        self.matches.clear()
        super().add(rule_factory)

    def bind(self, *args: Any, **kwargs: Any) -> MapAdapter:
        adapter = super().bind(*args, **kwargs)
        adapter.__class__ = RememberingMapAdapter
        return adapter


class RoutingKlein(Klein):
    """A Klein app routing through a ``RememberingMap``."""

    def __init__(self) -> None:
        super().__init__()
        self._url_map = RememberingMap()


__all__ = ["MATCHES_REMEMBERED", "RememberingMap", "RememberingMapAdapter", "RoutingKlein"]
