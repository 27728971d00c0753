"""Questions the page asks before it goes on, in a bar above the canvas.

Two situations ask: opening another image (or video frame) while the current one has unsaved
work, and a region the conversation used being edited or deleted (start a new conversation,
or keep this one with the old masks for its turns). Nothing is lost while the question
waits: the work stays, and marking and chatting go on.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from components.canvas import keep_image, switch_image
from components.common import View, Wiring
from components.session import Session
from components.text import escape
from gar_app.errors import InputError
from gar_app.tags import tag


@dataclass
class AskUI:
    group: gr.Column
    text: gr.HTML
    first: gr.Button
    second: gr.Button
    api_action: gr.Textbox  # hidden: /answer's choice
    api_button: gr.Button

    @property
    def view(self) -> View:
        return View([self.group, self.text, self.first, self.second], render)


def build() -> AskUI:
    with gr.Column(visible=False, elem_id="gar-ask", variant="panel") as group:
        text = gr.HTML(
            "", js_on_load=None, elem_classes=["gar-ask-text"], padding=False, label="Question for you"
        )
        with gr.Row(elem_classes=["gar-actions"]):
            first = gr.Button("Yes", variant="primary", size="sm", elem_id="gar-ask-first")
            second = gr.Button("No", size="sm", elem_id="gar-ask-second")
    with gr.Group(visible=False):
        api_action = gr.Textbox(label="action")
        api_button = gr.Button("api")
    return AskUI(group, text, first, second, api_action, api_button)


def new_conversation(session: Session) -> str:
    session.workspace.new_conversation()
    return "Started a new conversation; regions and captions are unchanged."


def keep_conversation(session: Session) -> str:
    ws = session.workspace
    ws.conversation.keep_old_masks(ws.regions)
    return "The conversation goes on with the masks its turns were about; the export records them."


ACTIONS = {
    "switch": switch_image,
    "stay": keep_image,
    "new_conversation": new_conversation,
    "keep_conversation": keep_conversation,
}


def question(session: Session) -> tuple[str, list[tuple[str, str]]] | None:
    """The open question as (text, [(button label, action)...]), or None."""
    ws = session.workspace
    pending = session.pending_image
    if pending is not None:
        if session.tracking_unsaved:
            tracks = session.tracking.tracks
            work = (
                f"The tracked video {session.tracking.name} has work that is not exported "
                f"({len(tracks.regions)} tracked region(s))"
            )
        else:
            current = ws.info.name if ws.info else "this image"
            work = (
                f"{current} has work that is not exported ({len(ws.regions)} region(s), "
                f"{len(ws.conversation.turns) // 2} chat exchange(s))"
            )
        return (
            f"{work}. Open {pending.name} and discard it? (Export JSON first to keep it.)",
            [(f"Open {pending.name}, discard", "switch"), ("Keep working here", "stay")],
        )
    conflicts = ws.conversation.conflicts(ws.regions)
    if conflicts:
        names = ", ".join(tag(k) for k in conflicts)
        what = ["edited" if k in ws.regions else "deleted" for k in conflicts]
        verb = what[0] if len(set(what)) == 1 else "edited or deleted"
        return (
            f"{names} was {verb} after the conversation used it. Start a new conversation (the chat is cleared), "
            f"or keep this one: its turns keep the old mask (the export records it), {names} stays taken, and "
            "questions about the new mask need a new conversation.",
            [("New conversation", "new_conversation"), ("Keep conversation", "keep_conversation")],
        )
    return None


def render(session: Session) -> list:
    asked = question(session)
    if asked is None:
        return [gr.update(visible=False), "", gr.update(), gr.update()]
    text, choices = asked
    return [
        gr.update(visible=True),
        escape(text),
        gr.update(value=choices[0][0]),
        gr.update(value=choices[1][0]),
    ]


def _choose(session: Session, slot: int) -> str | None:
    asked = question(session)
    if asked is None:
        return None
    return ACTIONS[asked[1][slot][1]](session)


def first_choice(session: Session) -> str | None:
    return _choose(session, 0)


def second_choice(session: Session) -> str | None:
    return _choose(session, 1)


def answer(session: Session, action: str) -> str | None:
    """``/answer``: switch / stay (another image asked for), new_conversation / keep_conversation."""
    asked = question(session)
    if asked is None:
        raise InputError("there is no open question to answer")
    allowed = [choice for _label, choice in asked[1]]
    if action not in allowed:
        raise InputError(f"the open question takes {' or '.join(allowed)}, not {action!r}")
    return ACTIONS[action](session)


def wire(ui: AskUI, wiring: Wiring) -> None:
    ui.first.click(**wiring.event(first_choice), api_visibility="private")
    ui.second.click(**wiring.event(second_choice), api_visibility="private")
    ui.api_button.click(**wiring.event(answer, [ui.api_action]), api_name="answer")
