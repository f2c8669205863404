"""The shared message notations (coreactors.markup): one definition, used by stories and NLU.

The shorthand's and the annotations' behaviour is tested where their users are
(test_interpreter.py, test_nlu_training_data.py, test_stories.py); here: that the names the NLU
room re-exports are the very same objects, and how an annotation error reads in each room.
"""

import pytest

from coreactors import markup
from coreactors.dialogue.stories import StoryParseError, read_stories
from coreactors.nlu import interpreter, training_data


def test_the_nlu_room_re_exports_the_same_objects():
    # Two copies of a class would break isinstance checks between the rooms.
    for name in ("INTENT_MESSAGE_PREFIX", "NaturalLanguageInterpreter", "RegexInterpreter",
                 "empty_parse"):
        assert getattr(interpreter, name) is getattr(markup, name), name
    assert training_data.annotate_text is markup.annotate_text


@pytest.mark.parametrize("text", ["a [](city) b", "a [x]() b", "a [x](city:) b"])
def test_an_annotation_error_is_bare_here_and_located_in_training_data(text):
    with pytest.raises(markup.AnnotationError) as bare:
        markup.parse_annotated_text(text)
    assert str(bare.value).startswith("entity annotation ")
    with pytest.raises(training_data.TrainingDataError) as located:
        training_data.load_markdown("## intent:greet\n- {}\n".format(text), "nlu.md")
    assert str(located.value) == "nlu.md:2: {}".format(bare.value)


def test_a_story_with_a_bad_annotation_names_its_file_and_line():
    story = "## s\n* greet: hello [](name)\n    - utter_greet\n"
    with pytest.raises(StoryParseError) as info:
        read_stories(story, "stories.md")
    assert str(info.value) == "stories.md:2: entity annotation '[](name)' has empty text"
    assert info.value.line == 2
