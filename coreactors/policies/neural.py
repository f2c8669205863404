"""The neural policy: a small feed-forward network over the last states of the conversation.

It takes the role Rasa's KerasPolicy had (a configured ``KerasPolicy`` maps to it): it learns
from every training window, so it also answers in situations the stories never showed, where
memoization has nothing to say. Written in numpy; training is deterministic for a fixed seed.
"""

import os
from typing import Any, Callable, Dict, Hashable, List, Optional, Sequence

import numpy as np

from coreactors.dialogue.domain import Domain
from coreactors.dialogue.tracker import DialogueStateTracker
from coreactors.policies.featurizers import TrackerFeaturizer
from coreactors.policies.memory import AnswerMemory
from coreactors.policies.network import FeedForwardClassifier
from coreactors.policies.policy import Policy
from coreactors.logs import Log

log = Log(__name__)

NETWORK_FILE = "network.npz"
# Conversations keep revisiting the same few windows of states; the network's answer for a
# window is remembered (up to this many windows per network and domain).
ANSWERS_REMEMBERED = 20000
ProgressCallback = Callable[[int, int, float, float], None]


class NeuralPolicy(Policy):
    """Predicts the next action with a feed-forward network over a window of states."""

    name = "NeuralPolicy"
    default_priority = 1
    settings_file = "neural_policy.json"

    def __init__(self, featurizer: Optional[TrackerFeaturizer] = None,
                 priority: Optional[int] = None, epochs: int = 100, batch_size: int = 32,
                 validation_split: float = 0.0, hidden_layers_sizes: Sequence[int] = (64,),
                 rnn_size: Optional[int] = None, learning_rate: float = 0.003,
                 dropout: float = 0.0, random_seed: Optional[int] = 42,
                 max_training_samples: Optional[int] = None, max_history: Optional[int] = None,
                 **unknown: Any) -> None:
        if featurizer is None and max_history is not None:
            from coreactors.policies.featurizers import MaxHistoryTrackerFeaturizer
            featurizer = MaxHistoryTrackerFeaturizer(max_history=max_history)
        super().__init__(featurizer, priority)
        if unknown:
            log.warn("{policy} ignores the option(s) {options}.", policy=self.name,
                     options=", ".join(sorted(unknown)))
        if rnn_size is not None:
            # Rasa's size of the LSTM: the width of our one hidden layer.
            hidden_layers_sizes = (int(rnn_size),)
        self.epochs = int(epochs)
        self.batch_size = int(batch_size)
        self.validation_split = float(validation_split)
        self.hidden_layers_sizes = tuple(int(h) for h in hidden_layers_sizes)
        self.learning_rate = float(learning_rate)
        self.dropout = float(dropout)
        self.random_seed = 42 if random_seed is None else int(random_seed)
        self.max_training_samples = max_training_samples
        self.network: Optional[FeedForwardClassifier] = None
        self.progress: Optional[ProgressCallback] = None
        self._answers = AnswerMemory(ANSWERS_REMEMBERED)  # per network and domain
        self._num_actions = 0

    def _encode(self, windows: Sequence[Any], domain: Domain) -> np.ndarray:
        featurizer = self.featurizer.state_featurizer
        return np.stack([featurizer.encode_window(w, domain) for w in windows]).astype(
            np.float32) if windows else np.zeros((0, 0), dtype=np.float32)

    def train(self, trackers: Sequence[DialogueStateTracker], domain: Domain) -> None:
        windows, labels = self.featurizer.training_examples(trackers)
        if self.max_training_samples is not None:
            windows = windows[:self.max_training_samples]
            labels = labels[:self.max_training_samples]
        self._num_actions = domain.num_actions
        self.network = FeedForwardClassifier(
            hidden_sizes=self.hidden_layers_sizes, epochs=self.epochs,
            batch_size=self.batch_size, learning_rate=self.learning_rate,
            validation_split=self.validation_split, dropout=self.dropout,
            random_seed=self.random_seed)
        if not windows:
            log.warn("The neural policy has no training examples.", policy=self.name)
            return
        X = self._encode(windows, domain)
        y = np.array([domain.index_for_action(a) for a in labels], dtype=np.int64)
        self.network.fit(X, y, domain.num_actions, progress=self.progress)

    def predict_action_probabilities(self, tracker: DialogueStateTracker, domain: Domain
                                     ) -> List[float]:
        network = self.network
        if network is None or not network.is_trained:
            return [0.0] * domain.num_actions
        window = self.featurizer.prediction_window(tracker)
        # Retrained (a new network) or asked about another domain: the memory starts over.
        answers = self._answers.answers_for(network, domain)
        known = answers.get(window)
        if known is None:
            x = self.featurizer.state_featurizer.encode_window(window, domain)
            known = network.predict_one(x).tolist()
            self._answers.remember(answers, window, known)
        return list(known)

    def prediction_key(self, tracker: DialogueStateTracker) -> Optional[Hashable]:
        return self.network, self.featurizer.prediction_window(tracker)

    def _settings(self) -> Dict[str, Any]:
        return {"priority": self.priority, "epochs": self.epochs,
                "batch_size": self.batch_size, "validation_split": self.validation_split,
                "hidden_layers_sizes": list(self.hidden_layers_sizes),
                "learning_rate": self.learning_rate, "dropout": self.dropout,
                "random_seed": self.random_seed,
                "max_training_samples": self.max_training_samples}

    def _persist_extra(self, path: str) -> None:
        if self.network is not None and self.network.is_trained:
            self.network.save(os.path.join(path, NETWORK_FILE))

    def _load_extra(self, path: str) -> None:
        network_path = os.path.join(path, NETWORK_FILE)
        if os.path.exists(network_path):
            self.network = FeedForwardClassifier.load(network_path)
