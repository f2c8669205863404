"""Tests for coreactors.policies.memory: answers per context, bounded."""

from coreactors.policies.memory import AnswerMemory


class Thing:
    """Equal to every other Thing: the memory must tell them apart by identity anyway."""

    def __eq__(self, other):
        return isinstance(other, Thing)

    __hash__ = object.__hash__


def test_answers_hold_for_the_same_objects_only():
    memory = AnswerMemory(10)
    domain, network = Thing(), Thing()
    answers = memory.answers_for(network, domain)
    memory.remember(answers, "w", [0.5])
    assert memory.answers_for(network, domain) == {"w": [0.5]}
    assert memory.answers_for(Thing(), domain) == {}  # an equal but other network
    assert memory.answers_for(network, domain) == {}  # and the earlier table is gone
    assert memory.answers_for(network) == {}


def test_a_full_memory_starts_over_and_forget_empties_it():
    memory = AnswerMemory(3)
    domain = Thing()
    answers = memory.answers_for(domain)
    for key in range(5):
        memory.remember(answers, key, key)
        assert len(memory.answers_for(domain)) <= 3
    assert memory.answers_for(domain)[4] == 4
    memory.forget()
    assert memory.answers_for(domain) == {}
