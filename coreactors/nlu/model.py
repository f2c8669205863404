"""The local NLU model: configuration, training, parsing and persistence.

``NLUModel.train(data, config)`` fits the intent classifier
(:mod:`coreactors.nlu.intent_classifier`) and, when the data has entities, the
CRF entity extractor (:mod:`coreactors.nlu.entity_extractor`); ``parse(text)``
returns exactly what Rasa NLU 0.13 returned for a message, so the dialogue
side and HTTP clients cannot tell the difference.

Configuration comes from a Rasa NLU config file (``language`` and
``pipeline``); the pipeline templates and component names of Rasa NLU 0.13 to
0.15 are accepted and mapped onto :class:`NLUConfig`, since a bot moving over
keeps its ``config.yml``.

A persisted model is a directory holding ``metadata.json`` (configuration,
labels, vocabularies, synonyms, regex features, lookup tables) and one
``.npz`` file of weights per trained component; nothing is pickled, so
loading a model never runs code from it.
"""

import dataclasses
import json
import os
import tempfile
import zipfile
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from coreactors.nlu.entity_extractor import CRFEntityExtractor, SpanMatcher
from coreactors.nlu.intent_classifier import IntentClassifier, normalize_word
from coreactors.nlu.interpreter import empty_parse
from coreactors.nlu.tokenizer import Token, tokenize
from coreactors.nlu.training_data import TrainingData
from coreactors.logs import Log

log = Log(__name__)

MODEL_FORMAT = "coreactors-nlu"
# Bumped whenever the persisted layout or the meaning of stored arrays changes.
MODEL_FORMAT_VERSION = 1

METADATA_FILE = "metadata.json"
INTENT_FILE = "intent_classifier.npz"
ENTITY_FILE = "entity_extractor.npz"

# What Rasa users saw in "extractor" for the CRF and in "processors" for synonyms.
EXTRACTOR_NAME = "ner_crf"
SYNONYM_PROCESSOR = "ner_synonyms"

INTENT_RANKING_LENGTH = 10


class NLUConfigError(ValueError):
    """An NLU configuration that cannot be used; the message names the culprit."""


@dataclass
class NLUConfig:
    """Options of the local NLU model.

    language: kept for compatibility with Rasa config files; the model itself
        is language-agnostic (character n-grams, no word lists).
    pipeline: always ``"coreactors"`` once loaded; Rasa pipeline names map to it.
    epochs: at most this many passes over the training data for the intent
        classifier; training ends earlier once the loss has converged.
    batch_size: examples per intent-classifier update (data sets up to this
        size are trained full-batch, so the seed does not matter for them).
    learning_rate: Adam step size for the intent classifier.
    l2: L2 penalty on the intent classifier's weights.
    word_ngrams: (min, max) word n-gram lengths for intent features;
        ``(0, 0)`` (the default) switches them off: character n-grams already
        cover whole short words, and on the benchmark corpora adding word
        n-grams lowered intent F1 (AskUbuntu 0.92 -> 0.90, WebApplications
        0.85 -> 0.81 with (1, 2)).
    char_ngrams: (min, max) character n-gram lengths, taken inside words
        (padded with a space at both ends); ``(0, 0)`` switches them off.
    min_count: drop intent features seen in fewer training examples.
    balanced_classes: weight intents equally in the loss whatever their
        number of examples.
    keyword_view: also train a classifier on class-concentration-weighted
        features and average the two (see intent_classifier).
    intent_threshold: if above 0 and the best intent's confidence is below
        it, the parse reports ``intent.name`` as None (the ranking is kept).
    entity_epochs: at most this many passes over the data for the CRF entity
        extractor (it also stops once converged).
    entity_batch_size: sentences per CRF update.
    entity_learning_rate: Adam step size for the CRF.
    entity_l2: L2 penalty on the CRF weights (the role of ner_crf's ``L2_c``).
    random_seed: seeds the only randomness (mini-batch order).
    """

    language: str = "en"
    pipeline: str = "coreactors"
    epochs: int = 300
    batch_size: int = 256
    learning_rate: float = 0.1
    l2: float = 1e-3
    word_ngrams: Tuple[int, int] = (0, 0)
    char_ngrams: Tuple[int, int] = (2, 5)
    min_count: int = 1
    balanced_classes: bool = True
    keyword_view: bool = True
    intent_threshold: float = 0.0
    entity_epochs: int = 300
    entity_batch_size: int = 16
    entity_learning_rate: float = 0.1
    entity_l2: float = 0.1
    random_seed: int = 42

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check types and ranges; raises NLUConfigError naming the option."""
        for name in ("language", "pipeline"):
            if not isinstance(getattr(self, name), str):
                raise NLUConfigError("NLU option {!r} must be a string".format(name))
        for name in ("epochs", "batch_size", "entity_epochs", "entity_batch_size", "min_count"):
            _check_int(name, getattr(self, name), minimum=1)
        _check_int("random_seed", self.random_seed, minimum=0)
        for name in ("learning_rate", "entity_learning_rate"):
            _check_number(name, getattr(self, name), positive=True)
        for name in ("l2", "entity_l2", "intent_threshold"):
            _check_number(name, getattr(self, name), positive=False)
        if not 0.0 <= self.intent_threshold <= 1.0:
            raise NLUConfigError("NLU option 'intent_threshold' must be between 0 and 1")
        for name in ("balanced_classes", "keyword_view"):
            if not isinstance(getattr(self, name), bool):
                raise NLUConfigError("NLU option {!r} must be true or false".format(name))
        for name in ("word_ngrams", "char_ngrams"):
            setattr(self, name, _check_range(name, getattr(self, name)))
        if self.word_ngrams[1] == 0 and self.char_ngrams[1] == 0:
            raise NLUConfigError("NLU options 'word_ngrams' and 'char_ngrams' cannot both be off")

    def to_dict(self) -> Dict[str, Any]:
        d = dataclasses.asdict(self)
        d["word_ngrams"] = list(self.word_ngrams)
        d["char_ngrams"] = list(self.char_ngrams)
        return d


_FIELDS = [f.name for f in dataclasses.fields(NLUConfig)]


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise NLUConfigError("NLU option {!r} must be an integer >= {} (got {!r})".format(name, minimum, value))


def _check_number(name: str, value: Any, positive: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (positive and value == 0):
        raise NLUConfigError("NLU option {!r} must be a {} number (got {!r})".format(
            name, "positive" if positive else "non-negative", value))


def _check_range(name: str, value: Any) -> Tuple[int, int]:
    if not isinstance(value, (list, tuple)) or len(value) != 2 or \
            any(isinstance(v, bool) or not isinstance(v, int) for v in value):
        raise NLUConfigError("NLU option {!r} must be a pair of integers [min, max] (got {!r})".format(
            name, value))
    lo, hi = int(value[0]), int(value[1])
    if (lo, hi) != (0, 0) and not 1 <= lo <= hi:
        raise NLUConfigError("NLU option {!r} must satisfy 1 <= min <= max, or be [0, 0] (got {!r})".format(
            name, value))
    return lo, hi


# ---------------------------------------------------------------------------
# Reading Rasa NLU config files
# ---------------------------------------------------------------------------

# Rasa NLU pipeline templates (0.13 names, plus the 0.15 ones users may have).
RASA_PIPELINE_TEMPLATES = (
    "spacy_sklearn", "tensorflow_embedding", "keyword", "mitie", "mitie_sklearn",
    "supervised_embeddings", "pretrained_embeddings_spacy", "pretrained_embeddings_convert",
)

# Component name -> its role.  Both the 0.13 snake_case names and the 0.14+
# class names are listed, since config files of both eras exist.
_COMPONENT_ROLES = {
    "tokenizer_whitespace": "tokenizer", "WhitespaceTokenizer": "tokenizer",
    "tokenizer_spacy": "tokenizer", "SpacyTokenizer": "tokenizer",
    "tokenizer_mitie": "tokenizer", "MitieTokenizer": "tokenizer",
    "tokenizer_jieba": "tokenizer", "JiebaTokenizer": "tokenizer",
    "intent_featurizer_count_vectors": "count_vectors", "CountVectorsFeaturizer": "count_vectors",
    "intent_featurizer_ngrams": "featurizer", "NGramFeaturizer": "featurizer",
    "intent_featurizer_spacy": "featurizer", "SpacyFeaturizer": "featurizer",
    "intent_featurizer_mitie": "featurizer", "MitieFeaturizer": "featurizer",
    "intent_entity_featurizer_regex": "regex", "RegexFeaturizer": "regex",
    "intent_classifier_tensorflow_embedding": "embedding_classifier",
    "EmbeddingIntentClassifier": "embedding_classifier",
    "intent_classifier_sklearn": "intent_classifier", "SklearnIntentClassifier": "intent_classifier",
    "intent_classifier_mitie": "intent_classifier", "MitieIntentClassifier": "intent_classifier",
    "intent_classifier_keyword": "intent_classifier", "KeywordIntentClassifier": "intent_classifier",
    "ner_crf": "crf", "CRFEntityExtractor": "crf",
    "ner_synonyms": "synonyms", "EntitySynonymMapper": "synonyms",
    "nlp_spacy": "language_model", "SpacyNLP": "language_model",
    "nlp_mitie": "language_model", "MitieNLP": "language_model",
    "coreactors": "coreactors",
}

# Extractors we do not have; entities of these kinds will not be found.
_UNSUPPORTED_EXTRACTORS = {
    "ner_spacy", "SpacyEntityExtractor", "ner_mitie", "MitieEntityExtractor",
    "ner_duckling", "ner_duckling_http", "DucklingHTTPExtractor",
}


def _map_component(component: Dict[str, Any], options: Dict[str, Any]) -> None:
    name = component["name"]
    role = _COMPONENT_ROLES.get(name)
    rest = {k: v for k, v in component.items() if k != "name"}
    if role is None:
        if name in _UNSUPPORTED_EXTRACTORS:
            log.warn("NLU pipeline component {component!r} is not available; it is ignored and "
                     "its entities will not be extracted.", component=name)
        else:
            log.info("NLU pipeline component {component!r} has no equivalent here; ignored.",
                     component=name)
        return
    used: List[str] = []
    if role == "coreactors":
        for key, value in rest.items():
            if key not in _FIELDS or key in ("language", "pipeline"):
                raise NLUConfigError("unknown option {!r} in the 'coreactors' pipeline component".format(key))
            options[key] = value
            used.append(key)
    elif role == "count_vectors":
        lo = rest.get("min_ngram")
        hi = rest.get("max_ngram")
        if lo is not None or hi is not None:
            target = "char_ngrams" if rest.get("analyzer") in ("char", "char_wb") else "word_ngrams"
            current = options.get(target, getattr(NLUConfig, target))
            options[target] = [lo if lo is not None else current[0] or 1, hi if hi is not None else max(current[1], 1)]
            used += [k for k in ("min_ngram", "max_ngram", "analyzer") if k in rest]
        if isinstance(rest.get("min_df"), int) and not isinstance(rest.get("min_df"), bool):
            options["min_count"] = rest["min_df"]
            used.append("min_df")
    elif role == "embedding_classifier":
        if "epochs" in rest:
            options["epochs"] = rest["epochs"]
            used.append("epochs")
        if "batch_size" in rest:
            size = rest["batch_size"]
            # Rasa grows the batch between two sizes during training; the
            # larger one is the closer match for a fixed batch size.
            options["batch_size"] = max(size) if isinstance(size, (list, tuple)) and size else size
            used.append("batch_size")
    elif role == "crf":
        if "max_iterations" in rest:
            options["entity_epochs"] = rest["max_iterations"]
            used.append("max_iterations")
        if "L2_c" in rest:
            options["entity_l2"] = rest["L2_c"]
            used.append("L2_c")
    ignored = sorted(k for k in rest if k not in used)
    if ignored:
        log.info("NLU pipeline component {component!r}: option(s) {options} have no equivalent "
                 "here; ignored.", component=name, options=", ".join(ignored))


def nlu_config_from_dict(raw: Optional[Dict[str, Any]]) -> NLUConfig:
    """Build an NLUConfig from the parsed content of a Rasa NLU config file."""
    if raw is None:
        return NLUConfig()
    if not isinstance(raw, dict):
        raise NLUConfigError("an NLU config must be a mapping of options (got {})".format(
            type(raw).__name__))
    options: Dict[str, Any] = {}
    for key in raw:
        if key not in _FIELDS:
            raise NLUConfigError("unknown NLU config option {!r} (known: {})".format(
                key, ", ".join(_FIELDS)))
    pipeline = raw.get("pipeline", "coreactors")
    if pipeline is None:
        pipeline = "coreactors"
    if isinstance(pipeline, str):
        if pipeline != "coreactors":
            if pipeline not in RASA_PIPELINE_TEMPLATES:
                raise NLUConfigError("unknown NLU pipeline {!r} (known: coreactors, {})".format(
                    pipeline, ", ".join(RASA_PIPELINE_TEMPLATES)))
            log.info("NLU pipeline {pipeline!r} is served by the coreactors pipeline.",
                     pipeline=pipeline)
    elif isinstance(pipeline, list):
        for index, component in enumerate(pipeline):
            if isinstance(component, str):
                component = {"name": component}
            if not isinstance(component, dict) or not isinstance(component.get("name"), str):
                raise NLUConfigError("NLU pipeline component #{} must be a mapping with a 'name'".format(index + 1))
            _map_component(component, options)
    else:
        raise NLUConfigError("NLU option 'pipeline' must be a template name or a list of components")
    # Top-level options win over what the pipeline components implied.
    for key, value in raw.items():
        if key != "pipeline":
            options[key] = value
    options["pipeline"] = "coreactors"
    return NLUConfig(**options)


def load_nlu_config(path: Optional[str]) -> NLUConfig:
    """Read a Rasa NLU config file (YAML or JSON); ``None`` gives the defaults."""
    if path is None:
        return NLUConfig()
    import yaml  # only needed here; keeps the model importable without it

    try:
        with open(path, encoding="utf-8") as f:
            raw = yaml.safe_load(f)
    except OSError as exc:
        raise NLUConfigError("cannot read NLU config {}: {}".format(path, exc)) from exc
    except yaml.YAMLError as exc:
        raise NLUConfigError("NLU config {} is not valid YAML: {}".format(path, exc)) from exc
    try:
        return nlu_config_from_dict(raw)
    except NLUConfigError as exc:
        raise NLUConfigError("{}: {}".format(path, exc)) from exc


# ---------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------


def _entity_boundaries(entities: Sequence[Dict[str, Any]]) -> List[int]:
    cuts = []
    for e in entities:
        cuts.append(int(e["start"]))
        cuts.append(int(e["end"]))
    return cuts


class NLUModel:
    """A trained NLU model: ``parse(text)`` gives Rasa NLU's parse result."""

    def __init__(self, config: NLUConfig, intent_classifier: Optional[IntentClassifier],
                 entity_extractor: Optional[CRFEntityExtractor], matcher: SpanMatcher,
                 entity_synonyms: Dict[str, str], regex_features: List[Dict[str, str]],
                 lookup_tables: List[Dict[str, Any]], intents: List[str]) -> None:
        self.config = config
        self.intent_classifier = intent_classifier
        self.entity_extractor = entity_extractor
        self.matcher = matcher
        self.entity_synonyms = entity_synonyms
        self.regex_features = regex_features
        self.lookup_tables = lookup_tables
        # All intents of the training data, also when there is only one and
        # no classifier is needed.
        self.intents = intents

    # -- training -------------------------------------------------------------

    @classmethod
    def train(cls, data: TrainingData, config: Optional[NLUConfig] = None) -> "NLUModel":
        """Train on ``data``; the same data and config always give the same model."""
        config = config or NLUConfig()
        config.validate()
        regex_features = [{"name": str(r["name"]), "pattern": str(r["pattern"])} for r in data.regex_features]
        lookup_tables = [{"name": str(t["name"]), "elements": [str(e) for e in t.get("elements", [])]}
                         for t in data.lookup_tables]
        matcher = SpanMatcher(regex_features, lookup_tables)
        synonyms = {str(k).lower(): str(v) for k, v in data.entity_synonyms.items()}

        with_intent = [m for m in data.examples if m.intent is not None]
        intents = sorted({str(m.intent) for m in with_intent})
        intent_classifier = None
        if len(intents) >= 1:
            # Separate generators per component, so adding entities to the
            # data does not change the intent model and vice versa.
            rng = np.random.default_rng(config.random_seed)
            docs = [cls._intent_inputs(matcher, m.text, tokenize(m.text)) for m in with_intent]
            intent_classifier = IntentClassifier.train(
                docs, [str(m.intent) for m in with_intent],
                word_ngrams=config.word_ngrams, char_ngrams=config.char_ngrams, epochs=config.epochs,
                batch_size=config.batch_size, learning_rate=config.learning_rate, l2=config.l2,
                min_count=config.min_count, balanced=config.balanced_classes,
                keyword_view=config.keyword_view, rng=rng)

        entity_extractor = None
        if any(m.entities for m in data.examples):
            rng = np.random.default_rng(config.random_seed + 1)
            sentences = []
            for m in data.examples:
                tokens = tokenize(m.text, _entity_boundaries(m.entities))
                sentences.append((m.text, tokens, m.entities))
            entity_extractor = CRFEntityExtractor.train(
                sentences, matcher, epochs=config.entity_epochs, batch_size=config.entity_batch_size,
                learning_rate=config.entity_learning_rate, l2=config.entity_l2, rng=rng)

        return cls(config, intent_classifier, entity_extractor, matcher, synonyms, regex_features,
                   lookup_tables, intents)

    @staticmethod
    def _intent_inputs(matcher: SpanMatcher, text: str, tokens: Sequence[Token]) -> Tuple[List[str], List[str]]:
        words = [normalize_word(t.text) for t in tokens]
        extra: List[str] = []
        if not matcher.empty:
            # A regex or lookup match anywhere in the message is one feature
            # for the intent, as Rasa's regex featurizer gave it.
            for marks in matcher.token_marks(text, tokens):
                for name, _ in marks:
                    if name not in extra:
                        extra.append(name)
        return words, extra

    # -- parsing --------------------------------------------------------------

    def parse(self, text: str) -> Dict[str, Any]:
        """Intent, intent ranking and entities of ``text`` in Rasa NLU's shape."""
        if not text or not text.strip():
            return empty_parse(text or "")
        tokens = tokenize(text)
        result = empty_parse(text)
        if self.intent_classifier is not None:
            words, extra = self._intent_inputs(self.matcher, text, tokens)
            probs = self.intent_classifier.predict_proba(words, extra)
            labels = self.intent_classifier.labels
            # Highest first; ties keep label order, so the ranking is stable.
            order = sorted(range(len(labels)), key=lambda i: -probs[i])
            ranking = [{"name": labels[i], "confidence": float(probs[i])}
                       for i in order[:INTENT_RANKING_LENGTH]]
            top = ranking[0]
            name = top["name"]
            if self.config.intent_threshold > 0.0 and top["confidence"] < self.config.intent_threshold:
                name = None
            result["intent"] = {"name": name, "confidence": top["confidence"]}
            result["intent_ranking"] = ranking
        if self.entity_extractor is not None:
            result["entities"] = [self._finish_entity(e) for e in self.entity_extractor.extract(text, tokens)]
        return result

    def _finish_entity(self, found: Dict[str, Any]) -> Dict[str, Any]:
        entity = {
            "start": found["start"],
            "end": found["end"],
            "value": found["value"],
            "entity": found["entity"],
            "confidence": float(found["confidence"]),
            "extractor": EXTRACTOR_NAME,
        }
        mapped = self.entity_synonyms.get(str(found["value"]).lower())
        if mapped is not None and mapped != entity["value"]:
            entity["value"] = mapped
            entity["processors"] = [SYNONYM_PROCESSOR]
        return entity

    # -- persistence ------------------------------------------------------------

    def persist(self, path: str) -> None:
        """Write the model to the directory ``path`` (created if needed)."""
        os.makedirs(path, exist_ok=True)
        meta: Dict[str, Any] = {
            "format": MODEL_FORMAT,
            "format_version": MODEL_FORMAT_VERSION,
            "coreactors_version": _package_version(),
            "config": self.config.to_dict(),
            "intents": self.intents,
            "entity_synonyms": self.entity_synonyms,
            "regex_features": self.regex_features,
            "lookup_tables": self.lookup_tables,
            "intent_classifier": None,
            "entity_extractor": None,
        }
        for key, filename, component in (("intent_classifier", INTENT_FILE, self.intent_classifier),
                                         ("entity_extractor", ENTITY_FILE, self.entity_extractor)):
            target = os.path.join(path, filename)
            if component is None:
                # Left over from an earlier model persisted here.
                if os.path.exists(target):
                    os.remove(target)
                continue
            part_meta, arrays = component.to_parts()
            meta[key] = part_meta
            _write_npz(target, arrays)
        # Metadata last: a directory with metadata.json is a complete model.
        _write_atomic(os.path.join(path, METADATA_FILE),
                      json.dumps(meta, ensure_ascii=False, indent=1, sort_keys=True).encode("utf-8"))

    @classmethod
    def load(cls, path: str) -> "NLUModel":
        """Load a model written by :meth:`persist`; ValueError if it is missing or corrupt."""
        if not os.path.isdir(path):
            raise ValueError("no NLU model at {!r}: not a directory".format(path))
        meta_path = os.path.join(path, METADATA_FILE)
        if not os.path.isfile(meta_path):
            raise ValueError("no NLU model at {!r}: {} is missing".format(path, METADATA_FILE))
        try:
            with open(meta_path, encoding="utf-8") as f:
                meta = json.load(f)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError("corrupt NLU model at {!r}: cannot read {}: {}".format(path, METADATA_FILE, exc)) from exc
        if not isinstance(meta, dict) or meta.get("format") != MODEL_FORMAT:
            raise ValueError("corrupt NLU model at {!r}: {} is not coreactors NLU metadata".format(path, METADATA_FILE))
        if meta.get("format_version") != MODEL_FORMAT_VERSION:
            raise ValueError("NLU model at {!r} has format version {!r}; this version reads {}. Retrain the "
                             "model.".format(path, meta.get("format_version"), MODEL_FORMAT_VERSION))
        try:
            config_raw = dict(meta["config"])
            for key in ("word_ngrams", "char_ngrams"):
                config_raw[key] = tuple(config_raw[key])
            config = NLUConfig(**config_raw)
            regex_features = [{"name": str(r["name"]), "pattern": str(r["pattern"])} for r in meta["regex_features"]]
            lookup_tables = [{"name": str(t["name"]), "elements": [str(e) for e in t["elements"]]}
                             for t in meta["lookup_tables"]]
            matcher = SpanMatcher(regex_features, lookup_tables)
            synonyms = {str(k): str(v) for k, v in dict(meta["entity_synonyms"]).items()}
            intents = [str(i) for i in meta["intents"]]
            intent_classifier = None
            if meta["intent_classifier"] is not None:
                intent_classifier = IntentClassifier.from_parts(
                    meta["intent_classifier"], _read_npz(os.path.join(path, INTENT_FILE)))
            entity_extractor = None
            if meta["entity_extractor"] is not None:
                entity_extractor = CRFEntityExtractor.from_parts(
                    meta["entity_extractor"], _read_npz(os.path.join(path, ENTITY_FILE)), matcher)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError, OSError, zipfile.BadZipFile) as exc:
            raise ValueError("corrupt NLU model at {!r}: {}".format(path, exc)) from exc
        return cls(config, intent_classifier, entity_extractor, matcher, synonyms, regex_features,
                   lookup_tables, intents)


def _package_version() -> str:
    try:
        from coreactors import __version__
        return str(__version__)
    except ImportError:  # pragma: no cover - the package always has it
        return "unknown"


def _write_atomic(path: str, payload: bytes) -> None:
    # Write-then-rename, so a crash mid-write never leaves a half file behind
    # under the real name.
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        # mkstemp creates owner-only files; a model is not a secret and is
        # often read by another user (e.g. the server's).
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _write_npz(path: str, arrays: Dict[str, np.ndarray]) -> None:
    import io

    buf = io.BytesIO()
    np.savez(buf, **{k: np.ascontiguousarray(v) for k, v in arrays.items()})
    _write_atomic(path, buf.getvalue())


def _read_npz(path: str) -> Dict[str, np.ndarray]:
    if not os.path.isfile(path):
        raise ValueError("{} is missing".format(os.path.basename(path)))
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}
