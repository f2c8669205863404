"""The dispatcher: what actions use to talk to the user during one turn.

It renders templates, records each message as a ``bot`` event, and collects the messages in the
shape Rasa's collecting output channel used (``recipient_id`` plus ``text``, ``buttons``,
``image``, ``attachment``), which is what REST clients receive.
"""

from typing import Any, Callable, Dict, List, Optional

from coreactors.dialogue.events import BotUttered
from coreactors.dialogue.templates import TemplatedNaturalLanguageGenerator

# Called with each collected message as it is produced (the callback channel posts them).
MessageListener = Callable[[Dict[str, Any]], None]


class Dispatcher:
    """Collects one turn's bot messages and their ``bot`` events."""

    def __init__(self, sender_id: str, nlg: TemplatedNaturalLanguageGenerator,
                 listener: Optional[MessageListener] = None) -> None:
        self.sender_id = sender_id
        self.nlg = nlg
        self.listener = listener
        self.messages: List[Dict[str, Any]] = []
        self.pending_bot_events: List[BotUttered] = []

    def take_bot_events(self) -> List[BotUttered]:
        events, self.pending_bot_events = self.pending_bot_events, []
        return events

    def _collect(self, message: Dict[str, Any]) -> None:
        message = {"recipient_id": self.sender_id, **{k: v for k, v in message.items()
                                                       if v is not None}}
        self.messages.append(message)
        if self.listener is not None:
            self.listener(message)

    def utter_response(self, response: Dict[str, Any]) -> None:
        """Sends a rendered template or an action server's response."""
        text = response.get("text")
        buttons = response.get("buttons")
        elements = response.get("elements")
        image = response.get("image")
        attachment = response.get("attachment")
        self.pending_bot_events.append(BotUttered(
            text, {"elements": elements, "buttons": buttons, "attachment": image}))
        if elements:
            for element in elements:
                element = element if isinstance(element, dict) else {}
                self._collect({"text": "{} : {}".format(element.get("title", ""),
                                                        element.get("subtitle", "")),
                               "buttons": element.get("buttons") or []})
        elif buttons:
            self._collect({"text": text, "buttons": buttons})
        elif text is not None:
            for paragraph in str(text).strip().split("\n\n"):
                self._collect({"text": paragraph})
        if image:
            self._collect({"image": image})
        if attachment:
            self._collect({"attachment": attachment})

    def utter_message(self, text: str) -> None:
        self.utter_response({"text": text})

    def utter_button_message(self, text: str, buttons: List[Dict[str, Any]]) -> None:
        self.utter_response({"text": text, "buttons": buttons})

    def utter_template(self, template_name: str, slot_values: Dict[str, Any], /,
                       **kwargs: Any) -> bool:
        """Renders and sends a template; False if the domain has no such template."""
        rendered = self.nlg.generate(template_name, slot_values, **kwargs)
        if rendered is None:
            return False
        self.utter_response(rendered)
        return True
