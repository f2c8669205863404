"""NLU training data: reading and writing the Rasa NLU 0.13 markdown and JSON formats.

The NLU model trains on a :class:`TrainingData` made of annotated example messages plus the
optional extras of the format: entity synonyms, regex features and lookup tables. This module reads
that data from markdown (``## intent:greet`` sections with ``[text](entity)`` annotations) or from
JSON (``{"rasa_nlu_data": {...}}``), from one file or a whole folder, and writes it back in either
format (e.g. for data collected by interactive learning).

Errors in the data raise :class:`TrainingDataError`, whose message starts with the file name and,
where there is one, the 1-based line number (``nlu.md:12: ...``).

Where we differ from Rasa on purpose, so that mistakes surface instead of silently losing data:

* section titles are stripped (``## intent: greet`` is the intent ``greet``);
* the section keyword is matched case-insensitively, and any other ``## word:`` header is an error;
* a list item outside any section, an item with empty text, a non-item line inside an intent,
  synonym or regex section, an annotation with empty text, type or value, and an invalid regex
  pattern are errors;
* any other heading (``# Title``, ``## Notes``) ends the current section;
* JSON entities whose value differs from the covered text record a synonym, just as markdown
  ``[text](type:value)`` annotations do, so both formats give the same synonyms.
"""

import copy
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Tuple

# The annotation syntax lives in coreactors.markup, where stories read and write it too;
# annotate_text stays importable from here.
from coreactors.markup import AnnotationError, annotate_text
from coreactors.markup import parse_annotated_text as _parse_annotated_text
from coreactors.logs import Log

log = Log(__name__)

INTENT = "intent"
SYNONYM = "synonym"
REGEX = "regex"
LOOKUP = "lookup"
SECTION_KINDS = (INTENT, SYNONYM, REGEX, LOOKUP)

MARKDOWN_EXTENSIONS = (".md", ".markdown")
JSON_EXTENSIONS = (".json",)

# Rasa's comment regex also accepts the (invalid HTML) closing "--!>", so we do too.
_COMMENT_RE = re.compile(r"<!--.*?--!?>", re.DOTALL)
# "##" not followed by a third "#", then "word:" -> a section header (known or not).
_SECTION_RE = re.compile(r"^##(?!#)\s*([A-Za-z_][\w-]*)\s*:(.*)$")
_ITEM_RE = re.compile(r"^[-*+]\s*(.*)$")
_NLU_MARKDOWN_HEADER_RE = re.compile(
    r"^[ \t]*##(?!#)[ \t]*(?:intent|synonym|regex|lookup)[ \t]*:", re.MULTILINE | re.IGNORECASE)

_JSON_SECTIONS = ("common_examples", "intent_examples", "entity_examples",
                  "regex_features", "lookup_tables", "entity_synonyms")


class TrainingDataError(ValueError):
    """Invalid training data; the message names the file and, if known, the line."""

    def __init__(self, message: str, filename: Optional[str] = None,
                 line: Optional[int] = None) -> None:
        self.filename = filename
        self.line = line
        # The bare message, so that callers can re-raise it for another file or line.
        self.reason = message
        location = filename if filename is not None else "<string>"
        if line is not None:
            location = "{}:{}".format(location, line)
        super().__init__("{}: {}".format(location, message))


@dataclass
class Message:
    """One training example; entity offsets index into ``text``."""

    text: str
    intent: Optional[str] = None
    entities: List[Dict[str, Any]] = field(default_factory=list)


@dataclass
class TrainingData:
    """Everything an NLU model trains on."""

    examples: List[Message] = field(default_factory=list)
    # Keys are lower-cased because synonyms are matched case-insensitively at parse time.
    entity_synonyms: Dict[str, str] = field(default_factory=dict)
    regex_features: List[Dict[str, str]] = field(default_factory=list)
    lookup_tables: List[Dict[str, Any]] = field(default_factory=list)

    @property
    def intents(self) -> List[str]:
        return sorted({m.intent for m in self.examples if m.intent is not None})

    @property
    def entity_types(self) -> List[str]:
        return sorted({e["entity"] for m in self.examples for e in m.entities})

    def merge(self, other: "TrainingData") -> "TrainingData":
        """A new TrainingData with both contents; on a synonym conflict ``other`` wins."""
        synonyms = dict(self.entity_synonyms)
        synonyms.update(other.entity_synonyms)
        return TrainingData(
            examples=copy.deepcopy(self.examples + other.examples),
            entity_synonyms=synonyms,
            regex_features=copy.deepcopy(self.regex_features + other.regex_features),
            lookup_tables=copy.deepcopy(self.lookup_tables + other.lookup_tables),
        )


# ---------------------------------------------------------------------------------------------
# Inline entity annotations
# ---------------------------------------------------------------------------------------------

def _parse_annotations(text: str, filename: Optional[str],
                       line: Optional[int]) -> Tuple[str, List[Dict[str, Any]]]:
    # Training data errors name the file and line, so the bare annotation error gets them here.
    try:
        return _parse_annotated_text(text)
    except AnnotationError as e:
        raise TrainingDataError(str(e), filename, line) from None


def parse_annotated_text(text: str) -> Tuple[str, List[Dict[str, Any]]]:
    """Split ``"show me [chinese](cuisine)"`` into the plain text and its entities.

    ``[text](type)`` gives the value ``text``; ``[text](type:value)`` gives ``value``. Offsets
    refer to the plain text. Raises TrainingDataError for an empty text, type or value.
    """
    return _parse_annotations(text, None, None)


# ---------------------------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------------------------

def _strip_comments(text: str) -> str:
    # Each comment becomes as many newlines as it spanned, so later line numbers stay right.
    return _COMMENT_RE.sub(lambda m: "\n" * m.group(0).count("\n"), text)


def _base_dir(filename: Optional[str]) -> str:
    return os.path.dirname(os.path.abspath(filename)) if filename else os.getcwd()


def _read_lookup_file(path: str, filename: Optional[str], line: Optional[int]) -> List[str]:
    full_path = path if os.path.isabs(path) else os.path.join(_base_dir(filename), path)
    try:
        with open(full_path, encoding="utf-8-sig") as f:
            content = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise TrainingDataError(
            "cannot read lookup table file {!r}: {}".format(path, exc), filename, line) from exc
    return [element.strip() for element in content.splitlines() if element.strip()]


def _add_synonym(synonyms: Dict[str, str], text: str, value: Any) -> None:
    value = str(value)
    key = text.lower()
    previous = synonyms.get(key)
    if previous is not None and previous != value:
        # Rasa only warns here; the later definition wins.
        log.debug("synonym {synonym!r} changed from {previous!r} to {value!r}", synonym=key,
                  previous=previous, value=value)
    synonyms[key] = value


def load_markdown(text: str, filename: Optional[str] = None) -> TrainingData:
    """Read NLU training data in markdown; ``filename`` is used in errors and for lookup paths."""
    data = TrainingData()
    section: Optional[str] = None
    title = ""
    lookup: Optional[Dict[str, Any]] = None

    text = _strip_comments(text.lstrip("\ufeff"))
    for number, raw_line in enumerate(text.splitlines(), start=1):
        line = raw_line.strip()
        if not line:
            continue

        if line.startswith("#"):
            header = _SECTION_RE.match(line)
            section, lookup = None, None
            if header is None:
                # A plain heading such as "# NLU data"; it closes the section before it.
                continue
            kind = header.group(1).lower()
            if kind not in SECTION_KINDS:
                raise TrainingDataError(
                    "unknown section {!r} (expected one of: {})".format(
                        header.group(1), ", ".join(SECTION_KINDS)), filename, number)
            # Rasa keeps the text after ':' untrimmed ("## intent: greet" -> " greet"); we strip
            # it, since a name with a leading space is never what the author meant.
            title = header.group(2).strip()
            if not title:
                raise TrainingDataError("{} section without a name".format(kind),
                                        filename, number)
            section = kind
            if kind == LOOKUP:
                lookup = {"name": title, "elements": []}
                data.lookup_tables.append(lookup)
            continue

        item = _ITEM_RE.match(line)
        if item is None:
            if section is None:
                # Free prose outside any section (e.g. a description) carries no data.
                continue
            if section == LOOKUP:
                lookup["elements"].extend(_read_lookup_file(line, filename, number))
                continue
            raise TrainingDataError(
                "line in {} section {!r} is not a list item (start it with '- ')".format(
                    section, title), filename, number)

        content = item.group(1).strip()
        if section is None:
            raise TrainingDataError("list item outside any section", filename, number)
        if not content:
            raise TrainingDataError("empty list item", filename, number)

        if section == INTENT:
            plain, entities = _parse_annotations(content, filename, number)
            for entity in entities:
                covered = plain[entity["start"]:entity["end"]]
                if entity["value"] != covered:
                    _add_synonym(data.entity_synonyms, covered, entity["value"])
            data.examples.append(Message(text=plain, intent=title, entities=entities))
        elif section == SYNONYM:
            _add_synonym(data.entity_synonyms, content, title)
        elif section == REGEX:
            try:
                re.compile(content)
            except re.error as exc:
                raise TrainingDataError("invalid regex {!r} for {!r}: {}".format(
                    content, title, exc), filename, number) from exc
            data.regex_features.append({"name": title, "pattern": content})
        else:
            lookup["elements"].append(content)
    return data


def _check_one_line(value: str, what: str) -> None:
    if "\n" in value or "\r" in value:
        raise ValueError("{} {!r} contains a line break and cannot be written as markdown".format(
            what, value))


def _synonym_groups(synonyms: Dict[str, str]) -> Dict[str, List[str]]:
    groups: Dict[str, List[str]] = {}
    for text, value in synonyms.items():
        groups.setdefault(value, []).append(text)
    return groups


def to_markdown(data: TrainingData) -> str:
    """Write ``data`` as NLU markdown.

    Examples are grouped by intent (sorted by name, file order within an intent). Consecutive
    regex features with the same name share one section, which keeps their order on reading back.
    Raises ValueError for what markdown cannot hold: an example without intent, a line break, or
    text that clashes with the annotation syntax.
    """
    sections: List[List[str]] = []

    by_intent: Dict[str, List[Message]] = {}
    for message in data.examples:
        if message.intent is None:
            raise ValueError("example {!r} has no intent; markdown cannot hold it".format(
                message.text))
        by_intent.setdefault(message.intent, []).append(message)
    for intent in sorted(by_intent):
        _check_one_line(intent, "intent")
        lines = ["## intent:{}".format(intent)]
        for message in by_intent[intent]:
            _check_one_line(message.text, "example")
            lines.append("- {}".format(annotate_text(message.text, message.entities)))
        sections.append(lines)

    for value, texts in _synonym_groups(data.entity_synonyms).items():
        _check_one_line(value, "synonym value")
        lines = ["## synonym:{}".format(value)]
        for text in texts:
            _check_one_line(text, "synonym")
            lines.append("- {}".format(text))
        sections.append(lines)

    previous_name = None
    for regex in data.regex_features:
        _check_one_line(regex["name"], "regex name")
        _check_one_line(regex["pattern"], "regex pattern")
        if regex["name"] != previous_name:
            sections.append(["## regex:{}".format(regex["name"])])
            previous_name = regex["name"]
        sections[-1].append("- {}".format(regex["pattern"]))

    for table in data.lookup_tables:
        _check_one_line(table["name"], "lookup table name")
        lines = ["## lookup:{}".format(table["name"])]
        for element in table["elements"]:
            _check_one_line(element, "lookup element")
            lines.append("- {}".format(element))
        sections.append(lines)

    return "\n\n".join("\n".join(lines) for lines in sections) + ("\n" if sections else "")


# ---------------------------------------------------------------------------------------------
# JSON
# ---------------------------------------------------------------------------------------------

def _is_int(value: Any) -> bool:
    # bool is an int subclass, but true/false as an offset is a mistake.
    return isinstance(value, int) and not isinstance(value, bool)


def _json_list(nlu: Dict[str, Any], key: str, filename: Optional[str]) -> List[Any]:
    value = nlu.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise TrainingDataError("rasa_nlu_data.{} must be a list".format(key), filename)
    return value


def _json_example(raw: Any, where: str, filename: Optional[str]) -> Message:
    if not isinstance(raw, dict):
        raise TrainingDataError("{} must be an object".format(where), filename)
    text = raw.get("text")
    if not isinstance(text, str) or not text:
        raise TrainingDataError("{}: 'text' is required and must be a non-empty string".format(
            where), filename)
    intent = raw.get("intent")
    if intent == "":
        intent = None
    if intent is not None and not isinstance(intent, str):
        raise TrainingDataError("{}: 'intent' must be a string".format(where), filename)
    raw_entities = raw.get("entities")
    if raw_entities is None:
        raw_entities = []
    if not isinstance(raw_entities, list):
        raise TrainingDataError("{}: 'entities' must be a list".format(where), filename)

    entities = []
    for index, raw_entity in enumerate(raw_entities):
        entity_where = "{}.entities[{}]".format(where, index)
        if not isinstance(raw_entity, dict):
            raise TrainingDataError("{} must be an object".format(entity_where), filename)
        missing = [key for key in ("start", "end", "entity") if key not in raw_entity]
        if missing:
            raise TrainingDataError("{} lacks {}".format(entity_where, ", ".join(missing)),
                                    filename)
        start, end, entity_type = raw_entity["start"], raw_entity["end"], raw_entity["entity"]
        if not (_is_int(start) and _is_int(end) and 0 <= start < end <= len(text)):
            raise TrainingDataError("{}: start {!r} and end {!r} are not a span of {!r}".format(
                entity_where, start, end, text), filename)
        if not isinstance(entity_type, str) or not entity_type:
            raise TrainingDataError("{}: 'entity' must be a non-empty string".format(
                entity_where), filename)
        value = raw_entity.get("value")
        if value is None:
            value = text[start:end]
        entities.append({"start": start, "end": end, "value": value, "entity": entity_type})
    return Message(text=text, intent=intent, entities=entities)


def _json_string(value: Any, where: str, filename: Optional[str]) -> str:
    if not isinstance(value, str) or not value:
        raise TrainingDataError("{} must be a non-empty string".format(where), filename)
    return value


def load_json(text: str, filename: Optional[str] = None) -> TrainingData:
    """Read NLU training data in the ``{"rasa_nlu_data": {...}}`` JSON format.

    Besides ``common_examples`` the legacy ``intent_examples`` and ``entity_examples`` are read
    (in that order). A lookup table's ``elements`` may be a file path instead of a list.
    """
    try:
        document = json.loads(text.lstrip("\ufeff"))
    except json.JSONDecodeError as exc:
        raise TrainingDataError("invalid JSON: {} (column {})".format(exc.msg, exc.colno),
                                filename, exc.lineno) from exc
    if not isinstance(document, dict) or not isinstance(document.get("rasa_nlu_data"), dict):
        found = ", ".join(sorted(document)) if isinstance(document, dict) else \
            type(document).__name__
        raise TrainingDataError(
            "not Rasa NLU training data: expected an object with a 'rasa_nlu_data' object "
            "(found: {})".format(found or "empty object"), filename)
    nlu = document["rasa_nlu_data"]
    # A misspelt key would otherwise mean silently training on nothing.
    unknown = sorted(set(nlu) - set(_JSON_SECTIONS))
    if unknown:
        raise TrainingDataError("unknown key(s) in rasa_nlu_data: {}".format(", ".join(unknown)),
                                filename)

    data = TrainingData()
    for key in ("common_examples", "intent_examples", "entity_examples"):
        for index, raw in enumerate(_json_list(nlu, key, filename)):
            message = _json_example(raw, "{}[{}]".format(key, index), filename)
            for entity in message.entities:
                covered = message.text[entity["start"]:entity["end"]]
                if str(entity["value"]) != covered:
                    _add_synonym(data.entity_synonyms, covered, entity["value"])
            data.examples.append(message)

    for index, raw in enumerate(_json_list(nlu, "regex_features", filename)):
        where = "regex_features[{}]".format(index)
        if not isinstance(raw, dict):
            raise TrainingDataError("{} must be an object".format(where), filename)
        name = _json_string(raw.get("name"), where + ".name", filename)
        pattern = _json_string(raw.get("pattern"), where + ".pattern", filename)
        try:
            re.compile(pattern)
        except re.error as exc:
            raise TrainingDataError("{}: invalid regex {!r}: {}".format(where, pattern, exc),
                                    filename) from exc
        data.regex_features.append({"name": name, "pattern": pattern})

    for index, raw in enumerate(_json_list(nlu, "lookup_tables", filename)):
        where = "lookup_tables[{}]".format(index)
        if not isinstance(raw, dict):
            raise TrainingDataError("{} must be an object".format(where), filename)
        name = _json_string(raw.get("name"), where + ".name", filename)
        elements = raw.get("elements")
        if isinstance(elements, str):
            elements = _read_lookup_file(elements, filename, None)
        elif not (isinstance(elements, list) and all(isinstance(e, str) for e in elements)):
            raise TrainingDataError(
                "{}.elements must be a list of strings or a file path".format(where), filename)
        data.lookup_tables.append({"name": name, "elements": list(elements)})

    # After the examples, so an explicit synonym list wins over an annotated value.
    for index, raw in enumerate(_json_list(nlu, "entity_synonyms", filename)):
        where = "entity_synonyms[{}]".format(index)
        if not isinstance(raw, dict):
            raise TrainingDataError("{} must be an object".format(where), filename)
        value = _json_string(raw.get("value"), where + ".value", filename)
        synonyms = raw.get("synonyms")
        if not (isinstance(synonyms, list) and all(isinstance(s, str) for s in synonyms)):
            raise TrainingDataError("{}.synonyms must be a list of strings".format(where),
                                    filename)
        for synonym in synonyms:
            _add_synonym(data.entity_synonyms, synonym, value)
    return data


def to_json(data: TrainingData) -> str:
    """Write ``data`` in the ``rasa_nlu_data`` JSON format (examples without entities have no
    ``entities`` key)."""
    examples = []
    for message in data.examples:
        example: Dict[str, Any] = {"text": message.text}
        if message.intent is not None:
            example["intent"] = message.intent
        if message.entities:
            example["entities"] = [
                {"start": e["start"], "end": e["end"],
                 "value": e.get("value", message.text[e["start"]:e["end"]]),
                 "entity": e["entity"]}
                for e in message.entities]
        examples.append(example)
    document = {"rasa_nlu_data": {
        "common_examples": examples,
        "regex_features": [{"name": r["name"], "pattern": r["pattern"]}
                           for r in data.regex_features],
        "lookup_tables": [{"name": t["name"], "elements": list(t["elements"])}
                          for t in data.lookup_tables],
        "entity_synonyms": [{"value": value, "synonyms": texts}
                            for value, texts in _synonym_groups(data.entity_synonyms).items()],
    }}
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


# ---------------------------------------------------------------------------------------------
# Files and folders
# ---------------------------------------------------------------------------------------------

def _read_text(path: str) -> str:
    try:
        # utf-8-sig: files saved by some Windows editors start with a BOM.
        with open(path, encoding="utf-8-sig") as f:
            return f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise TrainingDataError("cannot read file: {}".format(exc), path) from exc


def _looks_like_nlu_markdown(text: str) -> bool:
    return _NLU_MARKDOWN_HEADER_RE.search(_strip_comments(text)) is not None


def _looks_like_nlu_json(text: str) -> bool:
    # A substring test rather than parsing, so that a broken NLU JSON file is reported rather
    # than skipped as "not NLU data".
    return text.lstrip().startswith("{") and '"rasa_nlu_data"' in text


def _load_file(path: str, text: str) -> TrainingData:
    extension = os.path.splitext(path)[1].lower()
    if extension in JSON_EXTENSIONS:
        return load_json(text, path)
    if extension in MARKDOWN_EXTENSIONS:
        return load_markdown(text, path)
    if text.lstrip().startswith("{"):
        return load_json(text, path)
    if _looks_like_nlu_markdown(text):
        return load_markdown(text, path)
    raise TrainingDataError("cannot tell the format: neither NLU markdown nor rasa_nlu_data "
                            "JSON", path)


def _data_files(folder: str) -> Iterable[str]:
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith("."):
                yield os.path.join(root, name)


def load_data(path: str) -> TrainingData:
    """Load a training data file, or every NLU data file in a folder (merged).

    A file is read by its extension (``.md``/``.markdown``, ``.json``), otherwise by its
    content. In a folder (searched recursively, hidden files and folders skipped) only markdown
    and JSON files that hold NLU data are read; stories, READMEs, other JSON and lookup table
    text files are passed over.
    """
    if os.path.isdir(path):
        data = TrainingData()
        for file_path in _data_files(path):
            extension = os.path.splitext(file_path)[1].lower()
            if extension not in MARKDOWN_EXTENSIONS + JSON_EXTENSIONS:
                continue
            text = _read_text(file_path)
            if extension in JSON_EXTENSIONS:
                is_nlu = _looks_like_nlu_json(text)
            else:
                is_nlu = _looks_like_nlu_markdown(text)
            if not is_nlu:
                log.debug("skipping {path}: not NLU training data", path=file_path)
                continue
            loaded = _load_file(file_path, text)
            # Same result as merge(), without copying everything loaded so far once per file.
            data.examples.extend(loaded.examples)
            data.entity_synonyms.update(loaded.entity_synonyms)
            data.regex_features.extend(loaded.regex_features)
            data.lookup_tables.extend(loaded.lookup_tables)
        return data
    if not os.path.exists(path):
        raise TrainingDataError("no such file or folder", path)
    return _load_file(path, _read_text(path))
