"""The NLU model on the benchmark corpora of Braun et al. 2017 (``../shared/data/nlu``).

Trains on each ``train.md``, evaluates on ``test.md`` and holds the intent F1 the issue asks for
(above the paper's Rasa NLU and the best commercial service). Skipped where the data is absent.
"""

import os

import pytest

from coreactors.nlu.model import NLUModel
from coreactors.nlu.training_data import load_data
from coreactors.training.nlu import evaluate_nlu
from shared_data import SHARED_DATA

NLU_DATA = os.path.join(SHARED_DATA, "nlu")

TARGET_INTENT_F1 = {"ChatbotCorpus": 0.98, "AskUbuntuCorpus": 0.92,
                    "WebApplicationsCorpus": 0.84}


@pytest.mark.parametrize("corpus", sorted(TARGET_INTENT_F1))
def test_intent_f1_on_the_benchmark_corpora(corpus):
    folder = os.path.join(NLU_DATA, corpus)
    if not os.path.isdir(folder):
        pytest.skip("{} is absent: the NLU benchmark corpora are not available".format(folder))
    model = NLUModel.train(load_data(os.path.join(folder, "train.md")))
    result = evaluate_nlu(model, load_data(os.path.join(folder, "test.md")).examples)
    assert result.intents.f1 >= TARGET_INTENT_F1[corpus], result.summary()
    # Entities are reported, not held to a target; they must at least be found.
    assert result.entities.f1 > 0.5, result.summary()
