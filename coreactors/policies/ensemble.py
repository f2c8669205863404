"""The policy ensemble: every policy predicts, the most confident one wins.

Ties go to the policy with the higher priority (neural 1, memoization 2, fallback 3, form 4,
mapping 5), then to the one listed first. Also here: the policy configuration file
(``policies: - name: ...``) and the ensemble's folder on disk.
"""

import datetime
import importlib
import json
import os
import platform
from typing import Any, Dict, Hashable, List, Optional, Sequence, Tuple, Type

import yaml

import coreactors
from coreactors.dialogue.class_paths import MayImport, any_module
from coreactors.dialogue.domain import ACTION_LISTEN_NAME, Domain, InvalidDomain
from coreactors.dialogue.events import ActionExecutionRejected
from coreactors.dialogue.tracker import DialogueStateTracker
from coreactors.policies.fallback import FallbackPolicy, TwoStageFallbackPolicy
from coreactors.policies.featurizers import InvalidFeaturizerConfig, featurizer_from_config
from coreactors.policies.form import FormPolicy
from coreactors.policies.mapping import MappingPolicy
from coreactors.policies.memory import AnswerMemory
from coreactors.policies.memoization import AugmentedMemoizationPolicy, MemoizationPolicy
from coreactors.policies.neural import NeuralPolicy
from coreactors.policies.policy import Policy, keys_predictions

METADATA_FILE = "policy_metadata.json"
# Decisions an ensemble remembers per domain (see probabilities_using_best_policy); when full
# it starts over.
DECISIONS_REMEMBERED = 20000

POLICY_CLASSES: Dict[str, Type[Policy]] = {
    cls.name: cls for cls in (MemoizationPolicy, AugmentedMemoizationPolicy, NeuralPolicy,
                              FallbackPolicy, TwoStageFallbackPolicy, FormPolicy, MappingPolicy)
}
# Rasa's neural policy is served by ours, so existing policy files train unchanged.
POLICY_CLASSES["KerasPolicy"] = NeuralPolicy

DEFAULT_POLICY_CONFIG = {
    "policies": [
        {"name": "KerasPolicy", "epochs": 100, "max_history": 5},
        {"name": "FallbackPolicy", "fallback_action_name": "action_default_fallback"},
        {"name": "MemoizationPolicy", "max_history": 5},
        {"name": "FormPolicy"},
    ]
}


class InvalidPolicyConfig(ValueError):
    """A policy configuration that cannot be used."""


def policy_class(name: str, may_import: MayImport = any_module) -> Type[Policy]:
    """The policy class ``name`` names: a built-in one by its class name, else a class path
    whose module ``may_import`` allows."""
    short = name.rsplit(".", 1)[-1]
    if short in POLICY_CLASSES:
        return POLICY_CLASSES[short]
    if "." in name:
        module_name, _, class_name = name.rpartition(".")
        if not may_import(module_name):
            raise InvalidPolicyConfig(
                "The policy '{}' is not built in, and this model may not import module '{}' "
                "(a model that arrives over the network may name only the built-in policies, "
                "unless the server allows its modules with --allow_class_path).".format(
                    name, module_name))
        try:
            cls = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError):
            cls = None
        if isinstance(cls, type) and issubclass(cls, Policy):
            return cls
    raise InvalidPolicyConfig("Unknown policy '{}' (known: {}).".format(
        name, ", ".join(sorted(POLICY_CLASSES))))


def policies_from_config(config: Any, source: str = "<policy config>") -> List[Policy]:
    """Builds the policies of a configuration dict (the parsed ``policies.yml``)."""
    if not isinstance(config, dict):
        raise InvalidPolicyConfig("{}: expected a mapping with a 'policies' list.".format(source))
    items = config.get("policies", config.get("policy"))
    if not items or not isinstance(items, list):
        raise InvalidPolicyConfig("{}: 'policies' must be a non-empty list.".format(source))
    policies = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise InvalidPolicyConfig("{}: policy {} needs a 'name'.".format(source, i + 1))
        options = dict(item)
        try:
            cls = policy_class(options.pop("name"))
        except InvalidPolicyConfig as e:
            raise InvalidPolicyConfig("{}: policy {}: {}".format(source, i + 1, e))
        featurizer_config = options.pop("featurizer", None)
        try:
            if featurizer_config is not None:
                if not cls.uses_featurizer:
                    raise InvalidPolicyConfig("{}: {} takes no featurizer.".format(
                        source, cls.name))
                options["featurizer"] = featurizer_from_config(featurizer_config)
            policies.append(cls(**options))
        except InvalidFeaturizerConfig as e:
            raise InvalidPolicyConfig("{}: policy {} ({}): {}".format(source, i + 1, cls.name, e))
        except TypeError as e:
            raise InvalidPolicyConfig("{}: policy {} ({}) got an option it does not take: {}"
                                      .format(source, i + 1, cls.name, e))
        except ValueError as e:
            raise InvalidPolicyConfig("{}: policy {} ({}): {}".format(source, i + 1, cls.name, e))
    return policies


def load_policy_config(path: Optional[str]) -> List[Policy]:
    """The policies of a config file, or the default policies when ``path`` is None."""
    if path is None:
        return policies_from_config(DEFAULT_POLICY_CONFIG, "<default policy config>")
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except OSError as e:
        raise InvalidPolicyConfig("{}: cannot read the policy config: {}".format(path, e.strerror))
    except yaml.YAMLError as e:
        raise InvalidPolicyConfig("{}: not valid YAML: {}".format(path, e))
    return policies_from_config(data, path)


def _rejected_action(tracker: DialogueStateTracker) -> Optional[str]:
    """The action the last event says was rejected, if it is such an event."""
    last = tracker.events[-1] if tracker.events else None
    return last.action_name if isinstance(last, ActionExecutionRejected) else None


def _is_memoization(policy: Policy) -> bool:
    return type(policy) in (MemoizationPolicy, AugmentedMemoizationPolicy)


class PolicyEnsemble:
    """The policies of a model, consulted together."""

    def __init__(self, policies: Sequence[Policy], metadata: Optional[Dict[str, Any]] = None
                 ) -> None:
        self.policies = list(policies)
        self.metadata = metadata or {}
        self.policy_names = ["policy_{}_{}".format(i, type(p).__name__)
                             for i, p in enumerate(self.policies)]
        self._fallback = next((p for p in self.policies if isinstance(p, FallbackPolicy)), None)
        # Decisions remembered by what every policy's prediction depends on (prediction_key),
        # for one domain at a time; only when every policy can say what that is.
        self._keyed = all(keys_predictions(p) for p in self.policies)
        self._decisions = AnswerMemory(DECISIONS_REMEMBERED)

    def check_domain(self, domain: Domain) -> None:
        if domain.form_names and not any(isinstance(p, FormPolicy) for p in self.policies):
            raise InvalidDomain(
                "The domain defines forms, but the policies have no FormPolicy. Add "
                "'- name: FormPolicy' to the policy configuration or remove the forms.")

    def train(self, trackers: Sequence[DialogueStateTracker], domain: Domain,
              progress: Any = None) -> None:
        self.check_domain(domain)
        for policy in self.policies:
            if isinstance(policy, NeuralPolicy):
                policy.progress = progress
            policy.train(trackers, domain)
        self.metadata = {"trained_at": datetime.datetime.now().strftime("%Y%m%d-%H%M%S")}
        self.forget_decisions()

    def continue_training(self, trackers: Sequence[DialogueStateTracker], domain: Domain,
                          **kwargs: Any) -> None:
        for policy in self.policies:
            policy.continue_training(trackers, domain, **kwargs)
        self.forget_decisions()

    def forget_decisions(self) -> None:
        """Drops remembered decisions; needed after training a policy of this ensemble other
        than through ``train`` or ``continue_training``."""
        self._decisions.forget()

    def probabilities_using_best_policy(self, tracker: DialogueStateTracker, domain: Domain
                                        ) -> Tuple[List[float], Optional[str]]:
        """The winning policy's probabilities (normalised) and its name.

        Conversations keep coming back to the same situations; a decision is remembered under
        everything it depends on (each policy's prediction_key, the rejected action, the
        latest action), up to DECISIONS_REMEMBERED per domain."""
        key = self._decision_key(tracker) if self._keyed else None
        if key is None:
            return self._decide(tracker, domain)
        decisions = self._decisions.answers_for(domain)
        known = decisions.get(key)
        if known is None:
            probabilities, name = self._decide(tracker, domain)
            self._decisions.remember(decisions, key, (tuple(probabilities), name))
            return probabilities, name
        return list(known[0]), known[1]

    def _decision_key(self, tracker: DialogueStateTracker) -> Optional[Hashable]:
        keys = []
        for policy in self.policies:
            key = policy.prediction_key(tracker)
            if key is None:
                return None
            keys.append(key)
        return _rejected_action(tracker), tracker.latest_action_name, tuple(keys)

    def _decide(self, tracker: DialogueStateTracker, domain: Domain
                ) -> Tuple[List[float], Optional[str]]:
        rejected = _rejected_action(tracker)
        best: Optional[List[float]] = None
        best_key = (-1.0, -1)
        best_index = -1
        for i, policy in enumerate(self.policies):
            probabilities = list(policy.predict_action_probabilities(tracker, domain))
            if rejected is not None and domain.has_action(rejected):
                probabilities[domain.index_for_action(rejected)] = 0.0
            key = (max(probabilities) if probabilities else 0.0, policy.priority)
            if key > best_key:
                best, best_key, best_index = probabilities, key, i
        if best is None:
            return [0.0] * domain.num_actions, None
        winner = self.policies[best_index]
        if (self._fallback is not None and not _is_memoization(winner)
                and tracker.latest_action_name == ACTION_LISTEN_NAME
                and best.index(max(best)) == domain.index_for_action(ACTION_LISTEN_NAME)):
            # Listening right after the user spoke means nobody knew what to do.
            best = self._fallback.fallback_scores(domain)
            best_index = self.policies.index(self._fallback)
        total = sum(best)
        if total != total:  # a NaN somewhere: the others still count
            total = sum(p for p in best if p == p)
        if total > 0 and total != 1.0:  # x / 1.0 is x: most answers are already normalised
            best = [p / total for p in best]
        return best, self.policy_names[best_index]

    # ----------------------------------------------------------------- disk

    def persist(self, path: str) -> None:
        os.makedirs(path, exist_ok=True)
        for name, policy in zip(self.policy_names, self.policies):
            policy.persist(os.path.join(path, name))
        metadata = {
            "policy_names": ["{}.{}".format(type(p).__module__, type(p).__name__)
                             for p in self.policies],
            "max_histories": [p.max_history for p in self.policies],
            "ensemble_name": "coreactors.policies.ensemble.PolicyEnsemble",
            "rasa_core": coreactors.RASA_CORE_VERSION,
            "coreactors": coreactors.__version__,
            "python": platform.python_version(),
            "trained_at": self.metadata.get("trained_at"),
        }
        with open(os.path.join(path, METADATA_FILE), "w", encoding="utf-8") as f:
            json.dump(metadata, f, indent=2, sort_keys=True)

    @classmethod
    def load(cls, path: str, may_import: MayImport = any_module) -> "PolicyEnsemble":
        metadata_path = os.path.join(path, METADATA_FILE)
        try:
            with open(metadata_path, encoding="utf-8") as f:
                metadata = json.load(f)
            names = metadata["policy_names"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ValueError("{} is not a trained dialogue model ({} missing or unreadable: {})"
                             .format(path, METADATA_FILE, e))
        policies = []
        for i, name in enumerate(names):
            policy_cls = policy_class(name, may_import)
            policies.append(policy_cls.load(
                os.path.join(path, "policy_{}_{}".format(i, policy_cls.__name__))))
        return cls(policies, metadata)
