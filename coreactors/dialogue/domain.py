"""The domain: what the bot knows (intents, entities, slots, templates, actions, forms).

Reads ``domain.yml`` as Rasa Core 0.12 does, checks it with errors that name the file and the key,
and gives the domain back as JSON and YAML (what ``GET /domain`` returns). It also defines the
action index (default actions first) and the names of the state features policies learn from.
"""

import importlib
import io
import weakref
from typing import Any, Dict, FrozenSet, Iterable, List, Optional, Tuple

import yaml

from coreactors.dialogue.class_paths import MayImport, any_module
from coreactors.dialogue.events import SlotSet
from coreactors.dialogue.slots import SLOT_TYPES, Slot, UnfeaturizedSlot

ACTION_LISTEN_NAME = "action_listen"
ACTION_RESTART_NAME = "action_restart"
ACTION_DEFAULT_FALLBACK_NAME = "action_default_fallback"
ACTION_DEACTIVATE_FORM_NAME = "action_deactivate_form"
ACTION_REVERT_FALLBACK_EVENTS_NAME = "action_revert_fallback_events"
ACTION_DEFAULT_ASK_AFFIRMATION_NAME = "action_default_ask_affirmation"
ACTION_DEFAULT_ASK_REPHRASE_NAME = "action_default_ask_rephrase"

# Distinct states a domain keeps one copy of (Domain.shared_state); a conversation reaches a few
# dozen, a large bot with many slot values some thousands.
SHARED_STATES = 50_000

# A state as trackers keep it: its features and their values (tracker.State).
StateFeatures = FrozenSet[Tuple[str, float]]

# Rasa's index order; these always come first in the action list.
DEFAULT_ACTION_NAMES = [
    ACTION_LISTEN_NAME, ACTION_RESTART_NAME, ACTION_DEFAULT_FALLBACK_NAME,
    ACTION_DEACTIVATE_FORM_NAME, ACTION_REVERT_FALLBACK_EVENTS_NAME,
    ACTION_DEFAULT_ASK_AFFIRMATION_NAME, ACTION_DEFAULT_ASK_REPHRASE_NAME,
]

REQUESTED_SLOT = "requested_slot"

PREV_PREFIX = "prev_"
INTENT_PREFIX = "intent_"
ENTITY_PREFIX = "entity_"
SLOT_PREFIX = "slot_"
ACTIVE_FORM_PREFIX = "active_form_"

KNOWN_KEYS = ("intents", "entities", "slots", "templates", "actions", "forms", "config")
KNOWN_CONFIG_KEYS = ("store_entities_as_slots", "restart_intent")


class InvalidDomain(ValueError):
    """A domain that cannot be used; the message names the file and the key at fault."""


class Domain:
    """An immutable description of the bot. Build it with ``Domain.load`` or ``from_dict``."""

    def __init__(self, intents: List[Any], entities: List[str], slots: List[Slot],
                 templates: Dict[str, List[Dict[str, Any]]], action_names: List[str],
                 form_names: List[str], store_entities_as_slots: bool = True,
                 restart_intent: str = "restart", source: str = "<domain>") -> None:
        self.source = source
        self._intent_list = intents
        self.intent_properties = _intent_properties(intents, source)
        self.intents = sorted(self.intent_properties)
        self.entities = list(entities)
        self.slots = sorted(slots, key=lambda s: s.name)
        if form_names and REQUESTED_SLOT not in {s.name for s in self.slots}:
            # The form machinery needs to remember which slot it asked for.
            self.slots.append(UnfeaturizedSlot(REQUESTED_SLOT))
        self.templates = templates
        self.user_actions = list(action_names)
        self.form_names = list(form_names)
        self.store_entities_as_slots = store_entities_as_slots
        self.restart_intent = restart_intent

        self.action_names = (DEFAULT_ACTION_NAMES
                             + [a for a in self.user_actions if a not in DEFAULT_ACTION_NAMES]
                             + self.form_names)
        duplicates = sorted({a for a in self.action_names if self.action_names.count(a) > 1})
        if duplicates:
            raise InvalidDomain("{}: actions are listed more than once (under 'actions' or "
                                "'forms'): {}".format(source, ", ".join(duplicates)))
        self._action_index = {name: i for i, name in enumerate(self.action_names)}
        self._slots_by_name = {s.name: s for s in self.slots}
        self.input_states = self._build_input_states()
        self.input_state_index = {name: i for i, name in enumerate(self.input_states)}
        # Feature names are built once; the state of every turn is made of these strings.
        self._slot_feature_names = {
            s.name: ["{}{}_{}".format(SLOT_PREFIX, s.name, i)
                     for i in range(s.feature_dimensionality())] for s in self.slots}
        self._prev_names = {a: PREV_PREFIX + a for a in self.action_names}
        self._shared_states: Dict[StateFeatures, StateFeatures] = {}

    # ----------------------------------------------------------------- loading

    @classmethod
    def load(cls, path: str, may_import: "MayImport" = any_module) -> "Domain":
        """``may_import`` says which modules a slot's class path may name (see MayImport)."""
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise InvalidDomain("{}: cannot read the domain file: {}".format(path, e.strerror))
        return cls.from_yaml(text, path, may_import)

    @classmethod
    def from_yaml(cls, text: str, source: str = "<domain>",
                  may_import: "MayImport" = any_module) -> "Domain":
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise InvalidDomain("{}: not valid YAML: {}".format(source, e))
        if data is None:
            data = {}
        return cls.from_dict(data, source, may_import)

    @classmethod
    def from_dict(cls, data: Any, source: str = "<domain>",
                  may_import: "MayImport" = any_module) -> "Domain":
        if not isinstance(data, dict):
            raise InvalidDomain("{}: the domain must be a mapping of keys such as 'intents' "
                                "and 'actions'.".format(source))
        intents = _list_of(data, "intents", source, allow_maps=True)
        entities = _list_of(data, "entities", source)
        actions = _list_of(data, "actions", source)
        forms = _list_of(data, "forms", source)
        config = data.get("config") or {}
        if not isinstance(config, dict):
            raise InvalidDomain("{}: 'config' must be a mapping.".format(source))
        for key in config:
            if key not in KNOWN_CONFIG_KEYS:
                raise InvalidDomain("{}: unknown key 'config.{}' (known: {}).".format(
                    source, key, ", ".join(KNOWN_CONFIG_KEYS)))
        store = config.get("store_entities_as_slots", True)
        if not isinstance(store, bool):
            raise InvalidDomain("{}: 'config.store_entities_as_slots' must be true or false."
                                .format(source))
        restart_intent = config.get("restart_intent", "restart")
        slots = _load_slots(data.get("slots") or {}, source, may_import)
        templates = _load_templates(data.get("templates") or {}, source)
        return cls(intents, entities, slots, templates, actions, forms, store,
                   str(restart_intent), source)

    # ----------------------------------------------------------------- actions

    @property
    def num_actions(self) -> int:
        return len(self.action_names)

    def index_for_action(self, action_name: str) -> int:
        try:
            return self._action_index[action_name]
        except KeyError:
            raise UnknownAction(action_name, self.action_names)

    def has_action(self, action_name: str) -> bool:
        return action_name in self._action_index

    def slot(self, name: str) -> Optional[Slot]:
        return self._slots_by_name.get(name)

    def fresh_slots(self) -> Dict[str, Slot]:
        """A new set of slots at their initial values, for a new tracker."""
        return {s.name: s._fresh() for s in self.slots}

    def uses_entities(self, intent_name: Optional[str]) -> bool:
        props = self.intent_properties.get(intent_name) if intent_name else None
        return True if props is None else bool(props.get("use_entities", True))

    def slots_for_entities(self, entities: Iterable[Dict[str, Any]]) -> List[SlotSet]:
        """The slot events that storing entities as slots gives for these entities."""
        if not self.store_entities_as_slots:
            return []
        entities = list(entities)
        if not entities:
            return []
        events = []
        for slot in self.slots:
            if not slot.auto_fill:
                continue
            values = [e.get("value") for e in entities if e.get("entity") == slot.name]
            if values:
                value = values if slot.type_name == "list" else values[-1]
                events.append(SlotSet(slot.name, value))
        return events

    # ----------------------------------------------------------------- states

    def _build_input_states(self) -> List[str]:
        names = [INTENT_PREFIX + i for i in self.intents]
        names += [ENTITY_PREFIX + e for e in self.entities]
        for slot in self.slots:
            names += ["{}{}_{}".format(SLOT_PREFIX, slot.name, i)
                      for i in range(slot.feature_dimensionality())]
        names += [PREV_PREFIX + a for a in self.action_names]
        names += [ACTIVE_FORM_PREFIX + f for f in self.form_names]
        return names

    @property
    def num_states(self) -> int:
        return len(self.input_states)

    def state_of(self, parse_data: Dict[str, Any], slots: Dict[str, Slot],
                 latest_action_name: Optional[str], active_form_name: Optional[str],
                 binary: bool) -> Dict[str, float]:
        """The state features of a moment of the conversation.

        ``binary`` keeps only the most likely intent at 1.0 (what prediction uses); training
        keeps the confidences of every ranked intent.
        """
        state: Dict[str, float] = {}
        intent = parse_data.get("intent") or {}
        intent_name = intent.get("name") if isinstance(intent, dict) else None
        if intent_name:
            ranking = parse_data.get("intent_ranking")
            if binary or not ranking:
                confidence = intent.get("confidence")
                state[INTENT_PREFIX + intent_name] = (
                    1.0 if binary or confidence is None else float(confidence))
            else:
                for ranked in ranking:
                    if isinstance(ranked, dict) and ranked.get("name"):
                        state[INTENT_PREFIX + ranked["name"]] = float(
                            ranked.get("confidence") or 0.0)
            if self.uses_entities(intent_name):
                for entity in parse_data.get("entities") or ():
                    if isinstance(entity, dict) and entity.get("entity"):
                        state[ENTITY_PREFIX + str(entity["entity"])] = 1.0
        for name, slot in slots.items():
            names = self._slot_feature_names.get(name)
            if not names:
                continue
            for feature_name, value in zip(names, slot.as_feature()):
                if value != 0:
                    state[feature_name] = value
        if latest_action_name:
            prev = self._prev_names.get(latest_action_name)
            if prev is not None:
                state[prev] = 1.0
        if active_form_name:
            state[ACTIVE_FORM_PREFIX + active_form_name] = 1.0
        return state

    def shared_state(self, state: StateFeatures) -> StateFeatures:
        """The one copy of ``state`` the trackers of this domain keep.

        Conversations keep coming back to the same few states. Kept once, a state costs no
        memory per tracker and nothing to the collector, and the policies' memories (keyed by
        windows of states) match it by identity instead of comparing every feature. At most
        SHARED_STATES are kept; then the table starts over (a state kept before stays valid,
        it is merely no longer the shared copy). Worker threads share a domain: each step
        here is a single dict operation, and a full table is replaced, not cleared."""
        shared = self._shared_states.get(state)
        if shared is None:
            if len(self._shared_states) >= SHARED_STATES:
                self._shared_states = {}
            self._shared_states[state] = shared = state
        return shared

    # ----------------------------------------------------------------- output

    def as_dict(self) -> Dict[str, Any]:
        return {
            "config": {"store_entities_as_slots": self.store_entities_as_slots},
            "intents": [{name: dict(self.intent_properties[name])}
                        for name in _intent_names_in_file_order(self._intent_list)],
            "entities": list(self.entities),
            "slots": {s.name: s.persistence_info() for s in self.slots},
            "templates": {name: [dict(v) for v in variants]
                          for name, variants in self.templates.items()},
            "actions": list(self.user_actions),
            "forms": list(self.form_names),
        }

    def reading_changes(self, other: "Domain") -> Optional[FrozenSet[Tuple[str, str]]]:
        """What a tracker reads differently under ``other`` than under this domain.

        A tracker's reading of its events depends on the domain only through its slots (which
        exist, their types and initial values), the actions that have a ``prev_`` feature and
        which intents use entities. The answer names what differs, as ``("slot", name)``,
        ``("action", name)`` and ``("intent", name)``: a conversation whose events mention none
        of them reads the same under both domains. None means the difference reaches every
        conversation: a differing slot whose initial value is a feature of every state.
        """
        # One model swap moves every live conversation from one domain to the same other one,
        # so the last answer is kept (weakly: an old model's domain must be free to go).
        cached = self.__dict__.get("_reading_changes")
        if cached is not None and cached[0]() is other:
            return cached[1]
        changes = self._compute_reading_changes(other)
        self._reading_changes = (weakref.ref(other), changes)
        return changes

    def _compute_reading_changes(self, other: "Domain") -> Optional[FrozenSet[Tuple[str, str]]]:
        changes = set()
        mine, theirs = self._slots_by_name, other._slots_by_name
        for name in mine.keys() | theirs.keys():
            a, b = mine.get(name), theirs.get(name)
            if (a is not None and b is not None and type(a) is type(b)
                    and a.persistence_info() == b.persistence_info()):
                continue
            if any(any(s._fresh().as_feature()) for s in (a, b) if s is not None):
                return None
            changes.add(("slot", name))
        changes.update(("action", name) for name in
                       self._action_index.keys() ^ other._action_index.keys())
        changes.update(("intent", name) for name in
                       self.intent_properties.keys() | other.intent_properties.keys()
                       if self.uses_entities(name) != other.uses_entities(name))
        return frozenset(changes)

    def as_yaml(self) -> str:
        stream = io.StringIO()
        stream.write("%YAML 1.1\n---\n")
        yaml.safe_dump(self.as_dict(), stream, default_flow_style=False, allow_unicode=True,
                       sort_keys=True)
        return stream.getvalue()

    def persist(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.as_yaml())

    def compare_with_states(self, states: List[str]) -> None:
        """Checks that a trained model's feature layout matches this domain."""
        if list(states) != self.input_states:
            missing = sorted(set(self.input_states) ^ set(states))
            raise InvalidDomain(
                "The domain does not match the one the model was trained with (differing "
                "features: {}). Retrain the model.".format(", ".join(missing[:10]) or "order"))

    def __repr__(self) -> str:
        return "<Domain {}: {} intents, {} actions>".format(self.source, len(self.intents),
                                                            len(self.action_names))


class UnknownAction(KeyError):
    """An action name the domain does not list."""

    def __init__(self, action_name: str, known: List[str]) -> None:
        super().__init__(action_name)
        self.action_name = action_name
        self.known = known

    def __str__(self) -> str:
        return ("Cannot access action '{}', as that name is not a registered action for this "
                "domain. Available actions are: {}".format(self.action_name,
                                                           ", ".join(self.known)))


def _list_of(data: Dict[str, Any], key: str, source: str, allow_maps: bool = False) -> List[Any]:
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidDomain("{}: '{}' must be a list.".format(source, key))
    for i, item in enumerate(value):
        ok = isinstance(item, str) or (allow_maps and isinstance(item, dict) and len(item) == 1)
        if not ok:
            raise InvalidDomain("{}: item {} of '{}' must be a name{}, got {!r}.".format(
                source, i + 1, key, " or a one-key mapping" if allow_maps else "", item))
    return list(value)


def _intent_names_in_file_order(intents: List[Any]) -> List[str]:
    names: List[str] = []
    for item in intents:
        name = item if isinstance(item, str) else next(iter(item))
        if name not in names:
            names.append(name)
    return names


def _intent_properties(intents: List[Any], source: str) -> Dict[str, Dict[str, Any]]:
    props: Dict[str, Dict[str, Any]] = {}
    for item in intents:
        if isinstance(item, str):
            props[item] = {"use_entities": True}
            continue
        name, value = next(iter(item.items()))
        if value is not None and not isinstance(value, dict):
            raise InvalidDomain("{}: the properties of intent '{}' must be a mapping (such as "
                                "'use_entities: false'), got {!r}.".format(source, name, value))
        value = dict(value or {})
        if "use_entities" in value and not isinstance(value["use_entities"], bool):
            raise InvalidDomain("{}: 'intents.{}.use_entities' must be true or false.".format(
                source, name))
        value.setdefault("use_entities", True)
        props[str(name)] = value
    return props


def _slot_class(type_name: Any, name: str, source: str,
                may_import: "MayImport" = any_module) -> type:
    if not isinstance(type_name, str):
        raise InvalidDomain("{}: slot '{}' needs a 'type' (one of text, bool, categorical, "
                            "float, list, unfeaturized).".format(source, name))
    cls = SLOT_TYPES.get(type_name)
    if cls is not None:
        return cls
    if "." in type_name:
        module_name, _, class_name = type_name.rpartition(".")
        if not may_import(module_name):
            raise InvalidDomain(
                "{}: slot '{}' names the class path '{}', and this model may not import "
                "module '{}' (a model that arrives over the network may name only the "
                "built-in slot types, unless the server allows its modules with "
                "--allow_class_path).".format(source, name, type_name, module_name))
        try:
            cls = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError):
            cls = None
        if isinstance(cls, type) and issubclass(cls, Slot):
            return cls
    raise InvalidDomain("{}: slot '{}' has the unknown type '{}' (known: text, bool, "
                        "categorical, float, list, unfeaturized, or a Slot class path)."
                        .format(source, name, type_name))


def _load_slots(data: Any, source: str, may_import: "MayImport" = any_module) -> List[Slot]:
    if not isinstance(data, dict):
        raise InvalidDomain("{}: 'slots' must be a mapping of slot names to their "
                            "settings.".format(source))
    slots = []
    for name, settings in data.items():
        if not isinstance(settings, dict):
            raise InvalidDomain("{}: 'slots.{}' must be a mapping with at least a 'type'."
                                .format(source, name))
        settings = dict(settings)
        cls = _slot_class(settings.pop("type", None), name, source, may_import)
        if "auto_fill" in settings and not isinstance(settings["auto_fill"], bool):
            raise InvalidDomain("{}: 'slots.{}.auto_fill' must be true or false.".format(
                source, name))
        try:
            slots.append(cls(str(name), **settings))
        except TypeError as e:
            raise InvalidDomain("{}: 'slots.{}' has a setting its type does not take ({})."
                                .format(source, name, e))
        except ValueError as e:
            raise InvalidDomain("{}: 'slots.{}': {}".format(source, name, e))
    return slots


def _load_templates(data: Any, source: str) -> Dict[str, List[Dict[str, Any]]]:
    if not isinstance(data, dict):
        raise InvalidDomain("{}: 'templates' must be a mapping of template names to lists of "
                            "variants.".format(source))
    templates = {}
    for name, variants in data.items():
        if isinstance(variants, (str, dict)):
            variants = [variants]
        if not isinstance(variants, list) or not variants:
            raise InvalidDomain("{}: 'templates.{}' must be a list of variants.".format(
                source, name))
        loaded = []
        for i, variant in enumerate(variants):
            if isinstance(variant, str):
                loaded.append({"text": variant})
            elif isinstance(variant, dict):
                if "text" not in variant:
                    raise InvalidDomain("{}: variant {} of 'templates.{}' has no 'text' key."
                                        .format(source, i + 1, name))
                loaded.append(dict(variant))
            else:
                raise InvalidDomain("{}: variant {} of 'templates.{}' must be a string or a "
                                    "mapping.".format(source, i + 1, name))
        templates[str(name)] = loaded
    return templates
