"""Slots: the bot's memory, with the featurization of each slot type that Rasa Core 0.12 defines."""

from typing import Any, Dict, List, Optional, Type

from coreactors.logs import Log

log = Log(__name__)


class Slot:
    """A named value of the conversation. ``as_feature`` turns the value into numbers for policies."""

    type_name: str = ""
    # The class path Rasa Core reports in the domain's JSON, so existing tools recognise it.
    rasa_class: str = ""

    def __init__(self, name: str, initial_value: Any = None, auto_fill: bool = True,
                 value_reset_delay: Optional[int] = None) -> None:
        self.name = name
        self.initial_value = initial_value
        self.value = initial_value
        self.auto_fill = auto_fill
        self.value_reset_delay = value_reset_delay

    def feature_dimensionality(self) -> int:
        return 1

    def as_feature(self) -> List[float]:
        raise NotImplementedError

    def reset(self) -> None:
        self.value = self.initial_value

    def copy(self) -> "Slot":
        other = self._fresh()
        other.value = self.value
        return other

    def _fresh(self) -> "Slot":
        return type(self)(self.name, self.initial_value, self.auto_fill, self.value_reset_delay)

    def class_path(self) -> str:
        """What a domain names this slot's type by: Rasa's class path for a built-in slot, its
        own class's path for a custom one (as Rasa did), so that a trained model keeps it."""
        cls = type(self)
        if "rasa_class" in cls.__dict__:
            return cls.rasa_class
        return "{}.{}".format(cls.__module__, cls.__qualname__)

    def persistence_info(self) -> Dict[str, Any]:
        return {"type": self.class_path(), "initial_value": self.initial_value,
                "auto_fill": self.auto_fill}

    def __repr__(self) -> str:
        return "<{}({}: {!r})>".format(type(self).__name__, self.name, self.value)


class TextSlot(Slot):
    type_name = "text"
    rasa_class = "rasa_core.slots.TextSlot"

    def as_feature(self) -> List[float]:
        return [1.0 if self.value is not None else 0.0]


class BooleanSlot(Slot):
    """Two features: "is set" and "is true", so False and unset differ (as from Rasa 0.12)."""

    type_name = "bool"
    rasa_class = "rasa_core.slots.BooleanSlot"

    def feature_dimensionality(self) -> int:
        return 2

    def as_feature(self) -> List[float]:
        if self.value is None:
            return [0.0, 0.0]
        try:
            return [1.0, 1.0 if float(self.value) != 0.0 else 0.0]
        except (TypeError, ValueError):
            return [0.0, 0.0]


class FloatSlot(Slot):
    type_name = "float"
    rasa_class = "rasa_core.slots.FloatSlot"

    def __init__(self, name: str, initial_value: Any = None, auto_fill: bool = True,
                 value_reset_delay: Optional[int] = None, max_value: float = 1.0,
                 min_value: float = 0.0) -> None:
        super().__init__(name, initial_value, auto_fill, value_reset_delay)
        if not isinstance(max_value, (int, float)) or not isinstance(min_value, (int, float)):
            raise ValueError("Slot '{}': min_value and max_value must be numbers.".format(name))
        if min_value >= max_value:
            raise ValueError("Slot '{}': min_value ({}) must be smaller than max_value ({})."
                             .format(name, min_value, max_value))
        self.max_value = max_value
        self.min_value = min_value

    def _fresh(self) -> "Slot":
        return FloatSlot(self.name, self.initial_value, self.auto_fill, self.value_reset_delay,
                         self.max_value, self.min_value)

    def as_feature(self) -> List[float]:
        try:
            value = float(self.value)
        except (TypeError, ValueError):
            return [0.0]
        capped = max(self.min_value, min(self.max_value, value))
        return [(capped - self.min_value) / (self.max_value - self.min_value)]

    def persistence_info(self) -> Dict[str, Any]:
        d = super().persistence_info()
        d["max_value"] = self.max_value
        d["min_value"] = self.min_value
        return d


class ListSlot(Slot):
    type_name = "list"
    rasa_class = "rasa_core.slots.ListSlot"

    def as_feature(self) -> List[float]:
        try:
            return [1.0 if self.value is not None and len(self.value) > 0 else 0.0]
        except TypeError:
            return [0.0]


class UnfeaturizedSlot(Slot):
    """Remembered, never shown to policies."""

    type_name = "unfeaturized"
    rasa_class = "rasa_core.slots.UnfeaturizedSlot"

    def feature_dimensionality(self) -> int:
        return 0

    def as_feature(self) -> List[float]:
        return []


class CategoricalSlot(Slot):
    """One feature per allowed value; values compare case-insensitively as strings."""

    type_name = "categorical"
    rasa_class = "rasa_core.slots.CategoricalSlot"

    def __init__(self, name: str, initial_value: Any = None, auto_fill: bool = True,
                 value_reset_delay: Optional[int] = None, values: Optional[List[Any]] = None
                 ) -> None:
        super().__init__(name, initial_value, auto_fill, value_reset_delay)
        if values is None or not isinstance(values, list):
            raise ValueError("Categorical slot '{}' needs a list of 'values'.".format(name))
        self.values = [str(v).lower() for v in values]

    def _fresh(self) -> "Slot":
        return CategoricalSlot(self.name, self.initial_value, self.auto_fill,
                               self.value_reset_delay, list(self.values))

    def feature_dimensionality(self) -> int:
        return len(self.values)

    def as_feature(self) -> List[float]:
        features = [0.0] * len(self.values)
        key = str(self.value).lower()
        for i, value in enumerate(self.values):
            if value == key:
                features[i] = 1.0
                break
        else:
            if self.value is not None:
                log.warn("Categorical slot '{slot}' got the value {value!r}, which is not one of "
                         "its values {values}.", slot=self.name, value=self.value,
                         values=self.values)
        return features

    def persistence_info(self) -> Dict[str, Any]:
        d = super().persistence_info()
        d["values"] = self.values
        return d


SLOT_TYPES: Dict[str, Type[Slot]] = {
    cls.type_name: cls for cls in (TextSlot, BooleanSlot, FloatSlot, ListSlot,
                                   UnfeaturizedSlot, CategoricalSlot)
}
# Domains exported by Rasa (and our own /domain) name slot types by their class path.
SLOT_TYPES.update({cls.rasa_class: cls for cls in list(SLOT_TYPES.values())})
SLOT_TYPES.update({cls.rasa_class.rsplit(".", 1)[1]: cls for cls in list(SLOT_TYPES.values())})
SLOT_TYPES["boolean"] = BooleanSlot
