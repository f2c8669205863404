"""Which modules a model may import: a model names slot types and policies by class path
(``my_bot.slots.AgeSlot``), and loading it imports that module, which runs its code.

A model the operator has on disk (``-d``, training) may import anything, as in Rasa. A model
that arrives over the network (``POST /model``, the model server) may name only the built-in
classes, unless the operator allows module prefixes (``--allow_class_path my_bot``): the
loaders ask a ``MayImport`` before every import they would make.
"""

from typing import Callable, Iterable

# Whether a module (``my_bot.slots``) may be imported to load a class a model names.
MayImport = Callable[[str], bool]


def any_module(module_name: str) -> bool:
    """A model the operator has on disk: anything."""
    return True


def module_prefixes(prefixes: Iterable[str]) -> MayImport:
    """Modules under these prefixes: ``my_bot`` allows ``my_bot`` and ``my_bot.slots``, not
    ``my_bot_extra``. No prefixes: nothing (built-in classes only)."""
    allowed = tuple(p.strip().strip(".") for p in prefixes if p and p.strip().strip("."))

    def may_import(module_name: str) -> bool:
        return any(module_name == p or module_name.startswith(p + ".") for p in allowed)
    return may_import


__all__ = ["MayImport", "any_module", "module_prefixes"]
