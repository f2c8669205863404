"""The house plan's arrows, checked (/work/shared/design.md, "Rules of the house").

Every module of the ``coreactors`` package is read with ``ast`` (nothing is imported) and every
import statement in it counts: at module level, inside functions, methods, ``try`` and ``if``
blocks, relative or absolute, and ``importlib.import_module("literal")``. The tests fail on

* an import cycle between coreactors modules (one cycle is shown per tangle, with line numbers);
* an arrow that ``RULES`` forbids (minus the ``KNOWN_VIOLATIONS`` still waiting for a change);
* a module without a docstring, or a package whose docstring only names it.

Imports under ``if TYPE_CHECKING:`` never run: they count for the rules (knowing another room's
types is knowing the room) but not for cycles, since they are Python's way to let two modules
name each other's types without loading each other (events and the tracker do, by design:
an event applies itself to a tracker).

The checker itself is tested on small packages written to ``tmp_path``, so a checker that sees
nothing cannot pass for a clean house.
"""

import ast
import os
import re
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple

import pytest

import coreactors

PACKAGE = "coreactors"
PACKAGE_DIR = os.path.dirname(os.path.abspath(coreactors.__file__))


# =============================================================================================
# The rules
# =============================================================================================

# Libraries that own a thread model or an event loop.
SERVER_LIBRARIES = ("twisted", "klein", "treq", "pykka", "zope", "werkzeug")
# The rooms that run the server: threads, the reactor, sockets, files, the command line.
SERVER_ROOMS = ("coreactors.actors", "coreactors.http", "coreactors.stores",
                "coreactors.service", "coreactors.tap", "coreactors.cli", "coreactors.run",
                "coreactors.train", "coreactors.evaluate", "coreactors.affinity",
                "coreactors.fastpaths", "coreactors.workers", "coreactors.shared_port",
                "coreactors.options")
# Plain Python over numpy: called by the actors, never calling them.
PURE_ROOMS = ("coreactors.dialogue", "coreactors.nlu", "coreactors.policies",
              "coreactors.actions", "coreactors.training", "coreactors.processor",
              "coreactors.model", "coreactors.markup", "coreactors.logs")

DIALOGUE = "coreactors.dialogue"
NLU = "coreactors.nlu"
POLICIES = "coreactors.policies"
ACTIONS = "coreactors.actions"
TRAINING = "coreactors.training"
PROCESSOR = "coreactors.processor"
MODEL = "coreactors.model"
MARKUP = "coreactors.markup"
LOGS = "coreactors.logs"


@dataclass(frozen=True)
class Rule:
    """Modules in ``rooms`` import nothing in ``forbidden`` except what is in ``allowed``.

    A room or target is a dotted prefix: ``coreactors.nlu`` means the package and everything in
    it, ``twisted`` every module of Twisted."""

    rooms: Tuple[str, ...]
    forbidden: Tuple[str, ...]
    why: str
    allowed: Tuple[str, ...] = ()


# Who must not import what, and why (one rule per line of the house plan).
RULES: Tuple[Rule, ...] = (
    Rule(PURE_ROOMS, SERVER_LIBRARIES + SERVER_ROOMS,
         "the pure rooms run on any thread and are tested without a reactor or a server"),
    Rule((DIALOGUE,), (NLU, POLICIES, ACTIONS, TRAINING, PROCESSOR, MODEL),
         "dialogue is the vocabulary (domain, events, tracker, stories) the other rooms speak"),
    Rule((NLU,), (DIALOGUE, POLICIES, ACTIONS, TRAINING, PROCESSOR, MODEL),
         "NLU turns text into parse data and knows no conversation: it trains and serves alone"),
    Rule((POLICIES,), (NLU, ACTIONS, TRAINING, PROCESSOR, MODEL),
         "policies predict from trackers; they neither parse text nor run what they predict"),
    Rule((ACTIONS,), (NLU, POLICIES, TRAINING, PROCESSOR, MODEL),
         "actions do what was decided; they neither decide nor parse"),
    Rule((PROCESSOR,), (NLU, POLICIES, TRAINING, MODEL),
         "the message loop is handed its model (policies, interpreter) and action client"),
    Rule((MARKUP,), (DIALOGUE, NLU, POLICIES, ACTIONS, TRAINING, PROCESSOR, MODEL),
         "the shared notations are the bottom of the pure rooms, which all may import them"),
    Rule((LOGS,), (PACKAGE,),
         "every room logs through it, so it imports no room"),
    Rule(tuple(r for r in PURE_ROOMS if r != LOGS), ("logging",),
         "the pure rooms log through coreactors.logs, whose records keep their named fields"),
    Rule(("coreactors.stores",),
         ("coreactors.actors", "coreactors.http", "coreactors.service", "coreactors.tap",
          "coreactors.cli", "coreactors.affinity"),
         "a store is built by the server and gets any thread set-up from it; it knows none of it"),
    Rule(("coreactors.http",), ("coreactors.actors",),
         "http knows the Supervisor's interface, not the actors' internals",
         allowed=("coreactors.actors.interface",)),
    Rule(("coreactors.actors",), ("coreactors.http",),
         "the actors serve whatever front end calls them; http calls them, never the reverse"),
)

# (importing module, imported module) pairs that break a rule in files owned by another change.
# A pair that is fixed must leave this set (test_known_violations_are_still_there says so).
# Arrows allowed for now because a change under way removes them: none left.
KNOWN_VIOLATIONS: Set[Tuple[str, str]] = set()


# =============================================================================================
# The checker
# =============================================================================================

@dataclass(frozen=True)
class Import:
    """One imported module, as written in ``source`` at ``line``."""

    source: str
    target: str
    line: int
    type_only: bool


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def find_modules(root: str, package: str) -> Dict[str, str]:
    """Dotted module name -> file, for every ``.py`` file of the package under ``root``."""
    modules = {}
    base = os.path.join(root, *package.split("."))
    for folder, dirs, files in os.walk(base):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "__pycache__")))
        relative = os.path.relpath(folder, root)
        prefix = relative.replace(os.sep, ".")
        for name in sorted(files):
            if name.endswith(".py"):
                module = prefix if name == "__init__.py" else prefix + "." + name[:-3]
                modules[module] = os.path.join(folder, name)
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return ((isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
            or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def _absolute(module: str, is_package: bool, level: int, name: Optional[str]) -> str:
    if not level:
        return name or ""
    parts = module.split(".")
    if not is_package:
        parts = parts[:-1]
    parts = parts[:len(parts) - (level - 1)]
    return ".".join(parts + ([name] if name else []))


class _ImportReader(ast.NodeVisitor):
    """Collects every import of one module, noting those that only run for type checkers."""

    def __init__(self, module: str, is_package: bool, known: Iterable[str]) -> None:
        self.module = module
        self.is_package = is_package
        self.known = set(known)
        self.type_only = False
        self.found: List[Import] = []

    def _add(self, target: str, node: ast.AST) -> None:
        imp = Import(self.module, target, node.lineno, self.type_only)
        # ``from m import a, b`` is one arrow, not two.
        if target and target != self.module and imp not in self.found:
            self.found.append(imp)

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            outer, self.type_only = self.type_only, True
            for child in node.body:
                self.visit(child)
            self.type_only = outer
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = _absolute(self.module, self.is_package, node.level, node.module)
        for alias in node.names:
            # ``from pkg import mod`` imports the module ``pkg.mod``; ``from mod import name``
            # imports ``mod``.
            submodule = base + "." + alias.name
            self._add(submodule if submodule in self.known else base, node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        first = node.args[0] if node.args else None
        if (name in ("import_module", "__import__") and isinstance(first, ast.Constant)
                and isinstance(first.value, str)):
            self._add(first.value, node)
        self.generic_visit(node)


def read_imports(modules: Dict[str, str]) -> List[Import]:
    found: List[Import] = []
    for module, path in sorted(modules.items()):
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        reader = _ImportReader(module, path.endswith("__init__.py"), modules)
        reader.visit(tree)
        found.extend(reader.found)
    return found


def find_cycles(modules: Dict[str, str], imports: Sequence[Import]) -> List[str]:
    """One readable cycle per tangle of modules that import each other (type-only edges aside).

    ``a (line 3) -> b`` reads: line 3 of ``a`` imports ``b``."""
    graph: Dict[str, Dict[str, int]] = {m: {} for m in modules}
    for imp in imports:
        if imp.target in modules and not imp.type_only:
            graph[imp.source].setdefault(imp.target, imp.line)

    # Tarjan's strongly connected components.
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    tangles: List[List[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                tangles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)

    described = []
    for tangle in tangles:
        members = set(tangle)
        start = tangle[0]
        # Breadth-first inside the tangle, back to where we started: a shortest cycle.
        paths = {start: [start]}
        queue = [start]
        cycle: List[str] = []
        while queue and not cycle:
            node = queue.pop(0)
            for target in sorted(graph[node]):
                if target == start:
                    cycle = paths[node] + [start]
                    break
                if target in members and target not in paths:
                    paths[target] = paths[node] + [target]
                    queue.append(target)
        steps = ["{} (line {})".format(a, graph[a][b]) for a, b in zip(cycle, cycle[1:])]
        described.append("{} -> {}   [tangle: {}]".format(
            " -> ".join(steps), start, ", ".join(tangle)))
    return described


def find_violations(imports: Sequence[Import], rules: Sequence[Rule]
                    ) -> List[Tuple[Import, Rule]]:
    broken = []
    for imp in imports:
        for rule in rules:
            if (any(within(imp.source, room) for room in rule.rooms)
                    and any(within(imp.target, f) for f in rule.forbidden)
                    and not any(within(imp.target, a) for a in rule.allowed)
                    # A room's own modules are never forbidden to it.
                    and not any(within(imp.target, room) and within(imp.source, room)
                                for room in rule.rooms)):
                broken.append((imp, rule))
    return broken


_PLACEHOLDER = re.compile(r"^\s*\w+ package\.?\s*$")


def find_undocumented(modules: Dict[str, str]) -> List[str]:
    """Modules without a docstring, and packages whose docstring only says ``X package.``."""
    missing = []
    for module, path in sorted(modules.items()):
        with open(path, encoding="utf-8") as f:
            docstring = ast.get_docstring(ast.parse(f.read(), path))
        if not docstring or not docstring.strip():
            missing.append("{}: no module docstring".format(module))
        elif path.endswith("__init__.py") and _PLACEHOLDER.match(docstring):
            missing.append("{}: the docstring {!r} says nothing of what the room owns".format(
                module, docstring))
    return missing


def describe(broken: Iterable[Tuple[Import, Rule]]) -> str:
    return "\n".join("{} (line {}) imports {}: {}".format(imp.source, imp.line, imp.target,
                                                          rule.why)
                     for imp, rule in broken)


# =============================================================================================
# The house
# =============================================================================================

MODULES = find_modules(os.path.dirname(PACKAGE_DIR), PACKAGE)
IMPORTS = read_imports(MODULES)


def test_the_package_is_read():
    # Guards the rest: an empty walk would find no cycle and no arrow.
    assert {"coreactors.processor", "coreactors.dialogue.stories", "coreactors.http.app"} <= \
        set(MODULES)
    assert any(i.source == "coreactors.processor" and i.target == "coreactors.markup"
               for i in IMPORTS)


def test_no_import_cycles():
    cycles = find_cycles(MODULES, IMPORTS)
    assert not cycles, "import cycles between coreactors modules:\n" + "\n".join(cycles)


def test_no_arrow_the_house_plan_forbids():
    broken = [(imp, rule) for imp, rule in find_violations(IMPORTS, RULES)
              if (imp.source, imp.target) not in KNOWN_VIOLATIONS]
    assert not broken, "arrows the house plan forbids:\n" + describe(broken)


def test_known_violations_are_still_there():
    present = {(imp.source, imp.target) for imp, _ in find_violations(IMPORTS, RULES)}
    gone = KNOWN_VIOLATIONS - present
    assert not gone, "fixed, so take them out of KNOWN_VIOLATIONS: {}".format(sorted(gone))


def test_every_rule_names_rooms_that_exist():
    # A misspelt room would make its rule hold for nothing.
    for rule in RULES:
        for room in rule.rooms + rule.allowed:
            assert any(within(m, room) for m in MODULES), room


def test_every_module_says_what_it_is_for():
    missing = find_undocumented(MODULES)
    assert not missing, "\n".join(missing)


# =============================================================================================
# The checker, on small packages of its own
# =============================================================================================

def write_package(root, files: Dict[str, str]) -> Dict[str, str]:
    for name, text in files.items():
        path = root.joinpath(*name.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return find_modules(str(root), "pkg")


def test_checker_sees_a_cycle_through_a_function_level_relative_import(tmp_path):
    modules = write_package(tmp_path, {
        "pkg/__init__.py": '"""p."""\n',
        "pkg/a.py": '"""a."""\nfrom pkg.b import thing\n',
        "pkg/b.py": '"""b."""\ndef thing():\n    from . import a\n    return a\n',
        "pkg/c.py": '"""c."""\nimport pkg.a\n',
    })
    cycles = find_cycles(modules, read_imports(modules))
    assert cycles == ["pkg.a (line 2) -> pkg.b (line 3) -> pkg.a   [tangle: pkg.a, pkg.b]"]


def test_checker_resolves_relative_imports_in_packages_and_dynamic_imports(tmp_path):
    modules = write_package(tmp_path, {
        "pkg/__init__.py": '"""p."""\n',
        "pkg/sub/__init__.py": '"""s."""\nfrom . import inner\nfrom .. import top, top\n',
        "pkg/sub/inner.py": '"""i."""\nfrom ..top import x\nfrom .. import sub\n',
        "pkg/top.py": '"""t."""\nimport importlib\nimportlib.import_module("pkg.sub.inner")\n',
    })
    pairs = [(i.source, i.target) for i in read_imports(modules)]
    assert len(pairs) == len(set(pairs))
    assert set(pairs) == {("pkg.sub", "pkg.sub.inner"), ("pkg.sub", "pkg.top"),
                     ("pkg.sub.inner", "pkg.top"), ("pkg.sub.inner", "pkg.sub"),
                     ("pkg.top", "importlib"), ("pkg.top", "pkg.sub.inner")}


def test_checker_counts_type_only_imports_for_rules_not_cycles(tmp_path):
    modules = write_package(tmp_path, {
        "pkg/__init__.py": '"""p."""\n',
        "pkg/a.py": '"""a."""\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n'
                    '    from pkg.b import B\nelse:\n    import json\n',
        "pkg/b.py": '"""b."""\nimport pkg.a\n',
    })
    imports = read_imports(modules)
    assert find_cycles(modules, imports) == []
    rule = Rule(("pkg.a",), ("pkg.b",), "a is below b")
    assert [(i.target, i.line, i.type_only) for i, _ in find_violations(imports, [rule])] == [
        ("pkg.b", 4, True)]
    assert any(i.target == "json" and not i.type_only for i in imports)


def test_checker_sees_forbidden_arrows_but_not_allowed_ones_or_a_room_inside_itself(tmp_path):
    modules = write_package(tmp_path, {
        "pkg/__init__.py": '"""p."""\n',
        "pkg/web/__init__.py": '"""w."""\n',
        "pkg/web/app.py": ('"""a."""\nfrom pkg.core.interface import I\n'
                           'def f():\n    from pkg.core import engine\n    import twisted.web\n'),
        "pkg/core/__init__.py": '"""c."""\n',
        "pkg/core/interface.py": '"""i."""\nimport pkg.core.engine\n',
        "pkg/core/engine.py": '"""e."""\n',
    })
    rules = [Rule(("pkg.web",), ("pkg.core",), "interface only", allowed=("pkg.core.interface",)),
             Rule(("pkg.web", "pkg.core"), ("twisted",), "no reactor"),
             Rule(("pkg.core",), ("pkg",), "core is the bottom")]
    broken = find_violations(read_imports(modules), rules)
    assert [(i.source, i.target, i.line, r.why) for i, r in broken] == [
        ("pkg.web.app", "pkg.core.engine", 4, "interface only"),
        ("pkg.web.app", "twisted.web", 5, "no reactor")]


def test_checker_sees_missing_and_placeholder_docstrings(tmp_path):
    modules = write_package(tmp_path, {
        "pkg/__init__.py": '"""pkg package."""\n',
        "pkg/a.py": 'import os\n',
        "pkg/b.py": '"""What b is for."""\n',
    })
    assert find_undocumented(modules) == [
        "pkg: the docstring 'pkg package.' says nothing of what the room owns",
        "pkg.a: no module docstring"]


@pytest.mark.parametrize("module, target", [
    ("coreactors.dialogue.stories", "coreactors.nlu.interpreter"),
    ("coreactors.processor", "twisted.internet"),
    ("coreactors.http.app", "coreactors.actors.supervisor"),
    ("coreactors.stores.memory", "coreactors.actors.conversation"),
    ("coreactors.actors.supervisor", "coreactors.http.app"),
])
def test_the_house_rules_forbid_the_arrows_the_plan_names(module, target):
    # The table itself: each arrow the design forbids is caught by some rule.
    assert find_violations([Import(module, target, 1, False)], RULES)
