"""Templates (responses): choosing a variant and filling in ``{slot}`` values.

This is the natural language generator of the domain's ``templates``. A variant is picked at
random with the generator's own random source, so tests can seed it.
"""

import copy
import random
from typing import Any, Dict, List, Optional

from coreactors.logs import Log

log = Log(__name__)


def fill_template(template: Dict[str, Any], values: Dict[str, Any]) -> Dict[str, Any]:
    """Fills ``{name}`` placeholders of the template's text; unknown names leave it unfilled."""
    text = template.get("text")
    if not values or not isinstance(text, str) or "{" not in text:
        return template
    filled = dict(template)
    try:
        filled["text"] = text.format(**values)
    except (KeyError, IndexError, ValueError, AttributeError, TypeError) as e:
        log.warn("Could not fill the template text {text!r}: {error} (left unfilled).",
                 text=text, error=str(e))
    return filled


def _copy_plain(value: Any) -> Any:
    """A deep copy of YAML data (dicts, lists, scalars), so no caller can change a template.

    Several times faster than ``copy.deepcopy``, which keeps a memo for shared and cyclic
    objects that parsed YAML of a domain does not have."""
    if isinstance(value, dict):
        return {key: _copy_plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy_plain(item) for item in value]
    if isinstance(value, (str, int, float, bool, type(None))):
        return value
    return copy.deepcopy(value)


class TemplatedNaturalLanguageGenerator:
    """Renders the domain's templates."""

    def __init__(self, templates: Dict[str, List[Dict[str, Any]]],
                 rng: Optional[random.Random] = None) -> None:
        self.templates = templates
        self.rng = rng or random.Random()

    def has_template(self, name: str) -> bool:
        return name in self.templates

    def generate(self, template_name: str, slot_values: Dict[str, Any], /, **kwargs: Any
                 ) -> Optional[Dict[str, Any]]:
        """A rendered variant of the template, or None if there is no such template.

        ``kwargs`` fill placeholders too (any name, even ``template_name``: positional-only).
        """
        variants = self.templates.get(template_name)
        if not variants:
            return None
        chosen = variants[self.rng.randrange(len(variants))] if len(variants) > 1 else variants[0]
        values = dict(slot_values)
        values.update(kwargs)
        return _copy_plain(fill_template(chosen, values))
