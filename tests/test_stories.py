"""Tests for the story markdown reader/writer and the training-tracker generator.

Covers the Rasa Core test_dsl cases (D1-D11) in spirit, with our own inline data, plus the
stories_defaultdomain fixture when /work/shared/data is available.
"""

import os

import pytest

from coreactors.dialogue.domain import Domain
from coreactors.dialogue.events import (
    ActionExecuted, Form, ReminderScheduled, SlotSet, UserUttered)
from coreactors.dialogue.stories import (
    GENERATED_PREFIX, StoryParseError, read_stories, read_story_file, steps_as_story_string,
    story_from_events)
from coreactors.dialogue.tracker import DialogueStateTracker
from coreactors.nlu.interpreter import NaturalLanguageInterpreter, RegexInterpreter
from coreactors.training.generator import TrainingDataGenerator, generate_trackers
from shared_data import SHARED_DATA

SHARED_FIXTURES = os.path.join(SHARED_DATA, "fixtures")

DOMAIN_YAML = """
intents:
  - greet
  - default
  - goodbye
  - affirm
  - thank_you
  - inform
entities:
  - name
  - cuisine
slots:
  name:
    type: text
  cuisine:
    type: text
  ok:
    type: bool
templates:
  utter_greet:
    - "hey there {name}!"
  utter_default:
    - "default message"
  utter_goodbye:
    - "bye"
actions:
  - utter_greet
  - utter_default
  - utter_goodbye
  - utter_yes
  - utter_no
  - utter_ask
"""

# Same shape as Rasa's stories_defaultdomain.md: a story that only starts at a checkpoint,
# one that ends in one (with an OR and an entity), and a plain three-turn story.
CHECKPOINT_STORIES = """
## only start            <!-- starts at a checkpoint -->
> check_greet
* default
    - utter_default

## only end
* greet OR greet{"name": "Peter"}
    - utter_greet
> check_greet            <!-- ends at a checkpoint -->

## three turns
* greet
    - utter_greet
* default
    - utter_default
* goodbye
    - utter_goodbye
"""


@pytest.fixture(scope="module")
def domain():
    return Domain.from_yaml(DOMAIN_YAML)


def story_strings(tracker):
    return [e.as_story_string() for e in tracker.events]


def only_step(text, **kwargs):
    steps = read_stories(text, "s.md", **kwargs)
    assert len(steps) == 1
    return steps[0]


# --------------------------------------------------------------------------- reading lines

def test_story_names_from_hash_lines():
    steps = read_stories("## first story\n* greet\n# second\n* goodbye\n"
                         "### third <!-- a comment -->\n* affirm\n")
    assert [s.block_name for s in steps] == ["first story", "second", "third"]


def test_user_line_with_entities():
    step = only_step('## s\n* greet{"name": "Ann"}\n')
    (event,) = step.events
    assert isinstance(event, UserUttered)
    assert event.intent == {"name": "greet", "confidence": 1.0}
    assert event.text == 'greet{"name": "Ann"}'
    assert event.parse_data["text"] == '/greet{"name": "Ann"}'
    assert [(e["entity"], e["value"]) for e in event.entities] == [("name", "Ann")]
    assert event.parse_data["intent_ranking"] == [{"name": "greet", "confidence": 1.0}]


def test_plain_user_line():
    (event,) = only_step("## s\n* greet\n").events
    assert event.intent["name"] == "greet"
    assert event.entities == []


def test_action_lines():
    step = only_step("## s\n* greet\n    - utter_greet\n  - action_listen\n- my_action\n")
    assert [type(e) for e in step.events] == [UserUttered, ActionExecuted, ActionExecuted,
                                             ActionExecuted]
    assert [e.action_name for e in step.events[1:]] == ["utter_greet", "action_listen",
                                                       "my_action"]


def test_explicit_name_parameter_wins():
    (_, action) = only_step('## s\n* greet\n - my_action{"name": "other"}\n').events
    assert action == ActionExecuted("other")


def test_slot_line_with_several_keys_gives_several_events():
    step = only_step('## s\n* greet\n'
                     '    - slot{"name": "Ann", "ok": true, "num": 3, "l": [1, "x"]}\n')
    slots = step.events[1:]
    assert slots == [SlotSet("name", "Ann"), SlotSet("ok", True), SlotSet("num", 3),
                     SlotSet("l", [1, "x"])]
    # JSON values keep their types
    assert slots[1].value is True and isinstance(slots[2].value, int)


def test_form_lines():
    step = only_step('## s\n* greet\n    - some_form\n    - form{"name": "some_form"}\n'
                     '    - form{"name": null}\n')
    assert step.events[1] == ActionExecuted("some_form")
    assert isinstance(step.events[2], Form) and step.events[2].name == "some_form"
    assert isinstance(step.events[3], Form) and step.events[3].name is None


def test_other_event_lines():
    step = only_step('## s\n* greet\n    - reminder{"action": "utter_bye", "date_time": '
                     '"2018-09-03T11:41:10", "name": "r1", "kill_on_user_msg": false}\n')
    assert isinstance(step.events[1], ReminderScheduled)
    assert step.events[1].name == "r1"


def test_form_prefixed_lines_are_skipped():
    step = only_step('## s\n* start\n    - some_form\n    - form{"name": "some_form"}\n'
                     '* form: inform{"cuisine": "thai"}\n    - form: some_form\n'
                     '    - form{"name": null}\n')
    assert [e.as_story_string() for e in step.events] == [
        "start", "some_form", 'form{"name": "some_form"}', 'form{"name": null}']


def test_comments_are_removed():
    step = only_step("## s  <!-- name comment -->\n<!-- a whole comment line -->\n"
                     "* greet   <!-- user comment -->\n    - utter_greet <!-- c -->\n")
    assert step.block_name == "s"
    assert story_strings_of(step) == ["greet", "utter_greet"]


def story_strings_of(step):
    return [e.as_story_string() for e in step.events]


def test_empty_lines_are_skipped():
    step = only_step("\n\n## s\n\n* greet\n\n\n    - utter_greet\n\n")
    assert story_strings_of(step) == ["greet", "utter_greet"]


# --------------------------------------------------------------------------- checkpoints

def test_start_checkpoint_with_slot_conditions():
    step = only_step('## s\n> decide{"ok": true, "name": "Ann"}\n    - utter_yes\n')
    (checkpoint,) = step.start_checkpoints
    assert checkpoint.name == "decide"
    assert checkpoint.conditions == {"ok": True, "name": "Ann"}
    assert checkpoint.accepts({"ok": True, "name": "Ann", "other": 1})
    assert not checkpoint.accepts({"ok": False, "name": "Ann"})
    assert not checkpoint.accepts({})
    assert step.end_checkpoints == []
    assert not step.starts_story()


def test_end_checkpoints():
    step = only_step("## s\n* greet\n    - utter_greet\n> end_one\n> end_two\n")
    assert step.start_checkpoints == []
    assert [c.name for c in step.end_checkpoints] == ["end_one", "end_two"]
    assert step.starts_story()


def test_events_after_an_end_checkpoint_continue_in_a_new_step():
    steps = read_stories("## s\n* greet\n    - utter_greet\n> middle\n* goodbye\n"
                         "    - utter_goodbye\n")
    assert len(steps) == 2
    first, second = steps
    assert [c.name for c in first.end_checkpoints] == ["middle"]
    assert [c.name for c in second.start_checkpoints] == ["middle"]
    assert story_strings_of(second) == ["goodbye", "utter_goodbye"]


def test_or_creates_one_step_per_alternative_joined_by_a_generated_checkpoint():
    steps = read_stories("## s\n* greet OR affirm OR thank_you\n    - utter_greet\n")
    assert len(steps) == 4
    branches, rest = steps[:3], steps[3]
    assert [b.events[0].intent["name"] for b in branches] == ["greet", "affirm", "thank_you"]
    joint = branches[0].end_checkpoints[0].name
    assert joint.startswith(GENERATED_PREFIX)
    assert all(b.end_checkpoints[0].name == joint for b in branches)
    assert [c.name for c in rest.start_checkpoints] == [joint]
    assert story_strings_of(rest) == ["utter_greet"]


def test_or_gives_n_trackers(domain):
    trackers = generate_trackers(
        read_stories("## s\n* greet\n    - utter_greet\n* affirm OR thank_you OR inform\n"
                     "    - utter_default\n"), domain, augmentation_factor=0)
    assert len(trackers) == 3
    intents = sorted(t.events[4].intent["name"] for t in trackers)
    assert intents == ["affirm", "inform", "thank_you"]
    for t in trackers:
        assert story_strings(t)[-2:] == ["utter_default", "action_listen"]


def test_checkpoint_right_after_or(domain):
    steps = read_stories("## with checkpoint after or\n* affirm OR thank_you\n> after_or\n\n"
                         "## continue\n> after_or\n    - utter_default\n* goodbye\n"
                         "    - utter_goodbye\n")
    trackers = generate_trackers(steps, domain, augmentation_factor=0)
    assert len(trackers) == 2
    for t in trackers:
        assert story_strings(t)[-5:] == ["utter_default", "action_listen", "goodbye",
                                         "utter_goodbye", "action_listen"]


# --------------------------------------------------------------------------- e2e

class FixedInterpreter(NaturalLanguageInterpreter):
    """Parses every text as one fixed intent (to tell prediction from gold)."""

    def __init__(self, intent, entities=None):
        self.intent = intent
        self.entities = entities or []
        self.seen = []

    def parse(self, text):
        self.seen.append(text)
        return {"text": text, "intent": {"name": self.intent, "confidence": 0.9},
                "intent_ranking": [{"name": self.intent, "confidence": 0.9}],
                "entities": list(self.entities)}


def test_e2e_line_for_training_uses_the_story_intent_and_annotations():
    (event,) = only_step("## s\n* inform: I want [thai](cuisine) food\n").events
    assert event.text == "I want thai food"
    assert event.intent == {"name": "inform", "confidence": 1.0}
    assert [(e["entity"], e["value"], e["start"], e["end"]) for e in event.entities] == [
        ("cuisine", "thai", 7, 11)]


def test_e2e_line_for_evaluation_keeps_gold_and_prediction():
    interpreter = FixedInterpreter("greet")
    (event,) = only_step("## s\n* inform: I want [thai](cuisine) food\n",
                         interpreter=interpreter, e2e=True).events
    assert interpreter.seen == ["I want thai food"]
    assert event.intent["name"] == "greet"          # what the interpreter said
    assert event.parse_data["true_intent"] == "inform"
    assert [(e["entity"], e["value"]) for e in event.parse_data["true_entities"]] == [
        ("cuisine", "thai")]


def test_e2e_with_slash_message():
    (event,) = only_step("## s\n* greet: /greet\n", interpreter=RegexInterpreter(),
                         e2e=True).events
    assert event.parse_data["true_intent"] == "greet"
    assert event.intent["name"] == "greet"


# --------------------------------------------------------------------------- errors

@pytest.mark.parametrize("text, line, fragment", [
    ('## s\n* greet\n    - slot{"name": }\n', 3, "JSON"),
    ("## s\n* greet\nthis is not a story line\n", 3, "must start with"),
    ("* greet\n## s\n", 1, "before the first story"),
    ('## s\n\n\n* greet\n    - topic{"name": "x"}\n', 5, "topic"),
    ('## s\n> check{not json}\n', 2, "JSON"),
])
def test_errors_name_file_and_line(text, line, fragment):
    with pytest.raises(StoryParseError) as info:
        read_stories(text, "my_stories.md")
    message = str(info.value)
    assert message.startswith("my_stories.md:{}:".format(line))
    assert fragment in message
    assert info.value.line == line
    assert info.value.filename == "my_stories.md"
    assert isinstance(info.value, ValueError)


def test_error_in_a_file_names_the_file(tmp_path):
    path = tmp_path / "broken.md"
    path.write_text("## ok\n* greet\n    - utter_greet\n## bad\n* greet\n - slot{x}\n")
    with pytest.raises(StoryParseError) as info:
        read_story_file(str(path))
    assert str(path) in str(info.value)
    assert ":6:" in str(info.value)


def test_missing_file_is_a_story_parse_error(tmp_path):
    with pytest.raises(StoryParseError) as info:
        read_story_file(str(tmp_path / "nope.md"))
    assert "nope.md" in str(info.value)


# --------------------------------------------------------------------------- folders

def test_folder_is_read_recursively_in_sorted_order_skipping_hidden(tmp_path):
    (tmp_path / "b.md").write_text("## b\n* goodbye\n    - utter_goodbye\n")
    (tmp_path / "a.md").write_text("## a\n* greet\n    - utter_greet\n")
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "c.md").write_text("## c\n* affirm\n    - utter_default\n")
    # Hidden files and folders would not even parse: they must not be read.
    (tmp_path / ".hidden.md").write_text("garbage line\n")
    hidden_dir = tmp_path / ".git"
    hidden_dir.mkdir()
    (hidden_dir / "x.md").write_text("garbage line\n")
    steps = read_story_file(str(tmp_path))
    assert [s.block_name for s in steps] == ["a", "b", "c"]


def test_folder_with_only_empty_files_gives_no_training_data(tmp_path, domain):
    (tmp_path / ".hidden").write_text("")
    (tmp_path / "normal_file").write_text("")
    steps = read_story_file(str(tmp_path))
    assert steps == []
    assert generate_trackers(steps, domain, augmentation_factor=0) == []


def test_folder_gives_the_same_trackers_as_one_file(tmp_path, domain):
    # D10: the same stories split over files give the same training data.
    blocks = CHECKPOINT_STORIES.strip().split("\n\n")
    single = tmp_path / "single.md"
    single.write_text(CHECKPOINT_STORIES)
    folder = tmp_path / "multi"
    folder.mkdir()
    for i, block in enumerate(blocks):
        (folder / "part{}.md".format(i)).write_text(block + "\n")
    one = generate_trackers(read_story_file(str(single)), domain, augmentation_factor=0)
    many = generate_trackers(read_story_file(str(folder)), domain, augmentation_factor=0)
    assert sorted(map(tuple, map(story_strings, one))) == sorted(
        map(tuple, map(story_strings, many)))


# --------------------------------------------------------------------------- writing

def test_steps_as_story_string_round_trip(domain):
    steps = read_stories(CHECKPOINT_STORIES + '\n## conditions\n> check_greet{"name": "Peter"}\n'
                         '    - slot{"ok": true}\n    - utter_yes\n')
    text = steps_as_story_string(steps)
    again = read_stories(text)
    assert len(again) == len(steps)
    for a, b in zip(steps, again):
        assert a.block_name == b.block_name
        assert [(c.name, c.conditions) for c in a.start_checkpoints] == [
            (c.name, c.conditions) for c in b.start_checkpoints]
        assert [c.name for c in a.end_checkpoints] == [c.name for c in b.end_checkpoints]
        assert a.events == b.events
    # D3: the generated trackers are the same
    original = generate_trackers(steps, domain, augmentation_factor=0)
    recovered = generate_trackers(again, domain, augmentation_factor=0)
    assert sorted(t.export_stories() for t in original) == sorted(
        t.export_stories() for t in recovered)
    # and writing again is stable
    assert steps_as_story_string(again) == text


def test_steps_as_story_string_format():
    text = steps_as_story_string(read_stories(
        '## s\n> start{"ok": true}\n* greet{"name": "Ann"}\n    - slot{"a": 1}\n'
        '    - utter_greet\n> end\n'))
    assert text == ('## s\n> start{"ok": true}\n* greet{"name": "Ann"}\n    - slot{"a": 1}\n'
                    '    - utter_greet\n> end\n')


def test_story_from_events_marks_form_handled_turns(domain):
    form_domain = Domain.from_yaml(DOMAIN_YAML + "forms:\n  - some_form\n")
    events = read_stories('## s\n* greet\n    - some_form\n    - form{"name": "some_form"}\n'
                          )[0].events
    tracker = DialogueStateTracker("conv", form_domain)
    tracker.update(ActionExecuted("action_listen"))
    for event in events:
        tracker.update(event)
    tracker.update(ActionExecuted("action_listen"))
    tracker.update(UserUttered("thai", {"name": "inform", "confidence": 1.0}))
    tracker.update(ActionExecuted("some_form"))
    tracker.update(Form(None))
    text = story_from_events(tracker.applied_events(), "conv")
    assert text == ('## conv\n* greet\n    - some_form\n    - form{"name": "some_form"}\n'
                    '* form: inform\n    - form: some_form\n    - form{"name": null}\n')
    # reading it back skips the form-handled turn
    (step,) = read_stories(text)
    assert story_strings_of(step) == ["greet", "some_form", 'form{"name": "some_form"}',
                                      'form{"name": null}']


# --------------------------------------------------------------------------- generator

def test_generator_adds_listens_slots_and_final_listen(domain):
    trackers = generate_trackers(read_stories(
        '## s\n* greet{"name": "Ann", "cuisine": "thai"}\n    - utter_greet\n'
        '* goodbye\n    - utter_goodbye\n'), domain, augmentation_factor=0)
    (tracker,) = trackers
    assert story_strings(tracker) == [
        "action_listen", 'greet{"name": "Ann", "cuisine": "thai"}',
        'slot{"cuisine": "thai"}', 'slot{"name": "Ann"}',        # sorted slot order
        "utter_greet", "action_listen", "goodbye", "utter_goodbye", "action_listen"]
    assert tracker.get_slot("name") == "Ann"


def test_generator_does_not_double_an_explicit_listen(domain):
    (tracker,) = generate_trackers(read_stories(
        "## s\n* greet\n    - utter_greet\n    - action_listen\n* goodbye\n"), domain,
        augmentation_factor=0)
    assert story_strings(tracker) == ["action_listen", "greet", "utter_greet", "action_listen",
                                      "goodbye", "action_listen"]


def test_bot_first_opening_is_not_a_training_example(domain):
    (tracker,) = generate_trackers(read_stories("## s\n    - utter_greet\n* greet\n"
                                                "    - utter_default\n"), domain,
                                   augmentation_factor=0)
    assert story_strings(tracker)[0] == "utter_greet"
    _, actions = tracker.training_examples()
    assert actions[0] == ("utter_greet", False)
    assert all(predictable for _, predictable in actions[1:])


def test_checkpoints_glue_steps(domain):
    trackers = generate_trackers(read_stories(CHECKPOINT_STORIES), domain,
                                 augmentation_factor=0)
    assert len(trackers) == 3
    by_strings = sorted(story_strings(t) for t in trackers)
    assert by_strings == sorted([
        ["action_listen", "greet", "utter_greet", "action_listen", "default", "utter_default",
         "action_listen", "goodbye", "utter_goodbye", "action_listen"],
        ["action_listen", "greet", "utter_greet", "action_listen", "default", "utter_default",
         "action_listen"],
        ["action_listen", 'greet{"name": "Peter"}', 'slot{"name": "Peter"}', "utter_greet",
         "action_listen", "default", "utter_default", "action_listen"],
    ])
    names = sorted(t.sender_id for t in trackers)
    assert names == ["only end > only start", "only end > only start", "three turns"]


def test_story_starting_only_at_unused_checkpoint_is_ignored(domain):
    trackers = generate_trackers(read_stories(
        "## a\n* greet\n    - utter_greet\n\n"
        "## b\n> never_reached\n* goodbye\n    - utter_goodbye\n"), domain,
        augmentation_factor=0)
    assert [story_strings(t) for t in trackers] == [
        ["action_listen", "greet", "utter_greet", "action_listen"]]


def test_story_ending_at_unused_checkpoint_is_kept(domain):
    trackers = generate_trackers(read_stories(
        "## end one\n* default\n    - utter_default\n    - utter_greet\n> check_end_1\n\n"
        "## end two\n* greet\n    - utter_greet\n    - slot{\"name\": \"x\"}\n> check_end_2\n\n"
        "## unused start\n> check_start\n* greet\n    - utter_greet\n"), domain,
        augmentation_factor=0)
    assert len(trackers) == 2
    assert sorted(t.sender_id for t in trackers) == ["end one", "end two"]


def test_slot_conditions_on_checkpoints_filter(domain):
    trackers = generate_trackers(read_stories(
        '## yes\n* affirm\n    - slot{"ok": true}\n> decide\n\n'
        '## no\n* goodbye\n    - slot{"ok": false}\n> decide\n\n'
        '## then yes\n> decide{"ok": true}\n    - utter_yes\n\n'
        '## then no\n> decide{"ok": false}\n    - utter_no\n'), domain, augmentation_factor=0)
    got = sorted(story_strings(t) for t in trackers)
    assert got == sorted([
        ["action_listen", "affirm", 'slot{"ok": true}', "utter_yes", "action_listen"],
        ["action_listen", "goodbye", 'slot{"ok": false}', "utter_no", "action_listen"],
    ])


def single_state_windows(trackers):
    windows = set()
    for t in trackers:
        states, _ = t.training_examples()
        for s in states:
            windows.add(tuple(sorted(k for k, _ in s)))
    return windows


EXPECTED_DM1_WINDOWS = {
    (),
    ("intent_greet", "prev_utter_greet"),
    ("intent_greet", "prev_action_listen"),
    ("intent_goodbye", "prev_utter_goodbye"),
    ("intent_goodbye", "prev_action_listen"),
    ("intent_default", "prev_utter_default"),
    ("intent_default", "prev_action_listen"),
    ("intent_default", "prev_utter_default", "slot_name_0"),
    ("intent_default", "prev_action_listen", "slot_name_0"),
    ("entity_name", "intent_greet", "prev_utter_greet", "slot_name_0"),
    ("entity_name", "intent_greet", "prev_action_listen", "slot_name_0"),
}


def test_single_state_windows_like_dm1(domain):
    trackers = generate_trackers(read_stories(CHECKPOINT_STORIES), domain,
                                 augmentation_factor=0)
    assert single_state_windows(trackers) == EXPECTED_DM1_WINDOWS


def test_stories_defaultdomain_fixture():
    stories = os.path.join(SHARED_FIXTURES, "test_stories", "stories_defaultdomain.md")
    domain_path = os.path.join(SHARED_FIXTURES, "test_domains", "default_with_slots.yml")
    if not (os.path.exists(stories) and os.path.exists(domain_path)):
        pytest.skip("Rasa fixtures not available under {}".format(SHARED_FIXTURES))
    domain = Domain.load(domain_path)
    steps = read_story_file(stories)
    trackers = generate_trackers(steps, domain, augmentation_factor=0)
    assert len(trackers) == 3                              # EV2 / DM1
    assert single_state_windows(trackers) == EXPECTED_DM1_WINDOWS
    # D8: with augmentation 3: exactly 3 originals, at most 10 x factor glued ones
    augmented = generate_trackers(steps, domain, augmentation_factor=3)
    assert sum(1 for t in augmented if not t.is_augmented) == 3
    assert len(augmented) <= 3 + 30


def test_augmentation_marks_glued_trackers_and_is_bounded(domain):
    steps = read_stories(CHECKPOINT_STORIES)
    trackers = generate_trackers(steps, domain, augmentation_factor=3)
    originals = [t for t in trackers if not t.is_augmented]
    glued = [t for t in trackers if t.is_augmented]
    assert len(originals) == 3
    assert glued, "augmentation should glue stories"
    assert len(trackers) <= 3 + 10 * 3
    for t in glued:
        # a glued tracker holds more than one story: several user turns from the start
        strings = story_strings(t)
        assert strings[0] == "action_listen"
        assert strings[-1] == "action_listen"
        assert sum(1 for e in t.events if isinstance(e, UserUttered)) >= 2
        # no doubled listen where the stories were glued together
        for a, b in zip(t.events, t.events[1:]):
            assert not (isinstance(a, ActionExecuted) and isinstance(b, ActionExecuted)
                        and a.action_name == b.action_name == "action_listen")


def test_augmentation_is_deterministic_for_the_seed(domain):
    steps = read_stories(CHECKPOINT_STORIES)

    def run(seed):
        trackers = TrainingDataGenerator(steps, domain, augmentation_factor=5,
                                         seed=seed).generate()
        return [(t.sender_id, t.is_augmented, tuple(story_strings(t))) for t in trackers]

    assert run(42) == run(42)
    assert run(7) == run(7)
    first = [tuple(story_strings(t)) for t in generate_trackers(steps, domain, 5)]
    second = [tuple(story_strings(t)) for t in generate_trackers(steps, domain, 5)]
    assert first == second


def test_no_augmentation_without_story_concatenation(domain):
    steps = read_stories(CHECKPOINT_STORIES)
    trackers = generate_trackers(steps, domain, augmentation_factor=20,
                                 use_story_concatenation=False)
    assert len(trackers) == 3
    assert not any(t.is_augmented for t in trackers)


def test_cycles_terminate(domain):
    steps = read_stories(
        "## start\n* greet\n    - utter_greet\n> loop\n\n"
        "## again\n> loop\n* affirm\n    - utter_default\n> loop\n\n"
        "## out\n> loop\n* goodbye\n    - utter_goodbye\n")
    trackers = generate_trackers(steps, domain, augmentation_factor=0)
    assert trackers
    assert len(trackers) < 50
    for t in trackers:
        strings = story_strings(t)
        assert strings[:3] == ["action_listen", "greet", "utter_greet"]
        assert strings[-3:] == ["goodbye", "utter_goodbye", "action_listen"]
    # the loop is unrolled at least once
    assert any("affirm" in story_strings(t) for t in trackers)
    # and with augmentation it still ends
    assert generate_trackers(steps, domain, augmentation_factor=5)


def test_self_loop_checkpoint_terminates(domain):
    steps = read_stories("## a\n> loop\n* affirm\n    - utter_default\n> loop\n\n"
                         "## b\n* greet\n    - utter_greet\n> loop\n")
    # every path ends at the loop checkpoint forever: nothing finishes, but it stops
    trackers = generate_trackers(steps, domain, augmentation_factor=0)
    assert isinstance(trackers, list)


def test_duplicate_stories_collapse(domain):
    text = "## a\n* greet\n    - utter_greet\n\n## b\n* greet\n    - utter_greet\n"
    trackers = generate_trackers(read_stories(text), domain, augmentation_factor=0)
    assert len(trackers) == 1
