"""The multi-turn chat about the regions: streamed answers, Stop, decoding settings, tag chips.

Messages are escaped with ``components.text.escape`` and only the tags get markup (their
colour), so answers and questions show exactly what was written. The chat's trash button
clears the conversation itself, not only the display.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from components.common import View, Wiring
from components.session import Session
from components.style import ink
from components.text import escape
from gar_app.model.settings import GenerationSettings
from gar_app.regions import REGION_COLOURS
from gar_app.tags import split_tags
from gar_app.workspace import Services

GREEDY, SAMPLING = "Greedy (as in the paper)", "Sampling"

CHIPS_TEMPLATE = '<div class="gar-chips" aria-label="Insert a region tag into the question"></div>'
CHIPS_SCRIPT = """
const bar = element.querySelector('.gar-chips');
function render() {
  const chips = Array.isArray(props.value) ? props.value : [];
  bar.replaceChildren();
  for (const c of chips) {
    const chip = document.createElement('button');
    chip.type = 'button';
    chip.className = 'gar-chip';
    chip.style.background = c.colour;
    chip.style.color = c.ink;
    chip.textContent = c.tag;
    chip.title = 'Insert ' + c.tag + ' into the question';
    chip.addEventListener('click', () => {
      const box = document.querySelector('#gar-question textarea');
      if (!box) return;
      const text = box.value;
      box.value = text + (text && !text.endsWith(' ') ? ' ' : '') + c.tag + ' ';
      box.dispatchEvent(new Event('input', {bubbles: true}));
      box.focus();
    });
    bar.append(chip);
  }
}
watch('value', render);
render();
"""


def decoding_settings(
    mode: str, temperature: float, top_p: float, max_new_tokens: float
) -> GenerationSettings:
    return GenerationSettings(
        max_new_tokens=int(max_new_tokens),
        do_sample=mode == SAMPLING,
        temperature=float(temperature),
        top_p=float(top_p),
    )


@dataclass
class ChatUI:
    chatbot: gr.Chatbot
    chips: gr.HTML
    question: gr.Textbox
    send: gr.Button
    stop: gr.Button
    new_chat: gr.Button
    settings: list  # mode, temperature, top-p, max new tokens: the inputs of decoding_settings

    @property
    def view(self) -> View:
        return View([self.chatbot, self.chips], render)


def build(services: Services) -> ChatUI:
    has_model = services.gar is not None
    chatbot = gr.Chatbot(
        label="Chat about the regions",
        height=360,
        elem_id="gar-chat",
        sanitize_html=False,  # every message is escaped by colour_tags, which adds only the tag colours
        render_markdown=False,
        latex_delimiters=[],
        buttons=["copy"],
        placeholder="Ask about your regions, e.g. <i>What is the relationship between &lt;Prompt0&gt; and "
        "&lt;Prompt1&gt;?</i> Click a tag below to insert it.",
    )
    chips = gr.HTML(
        value=[], html_template=CHIPS_TEMPLATE, js_on_load=CHIPS_SCRIPT, padding=False, label="Tags"
    )
    question = gr.Textbox(
        label="Question",
        placeholder="Mention regions as <Prompt0>, <Prompt1>, … and press Enter"
        if has_model
        else "The chat needs a GAR model.",
        lines=1,
        max_lines=6,
        interactive=has_model,
        elem_id="gar-question",
    )
    with gr.Row(elem_classes=["gar-actions"]):
        send = gr.Button("Send", variant="primary", interactive=has_model, size="sm", elem_id="gar-send")
        stop = gr.Button("Stop", variant="stop", interactive=has_model, size="sm")
        new_chat = gr.Button("New conversation", interactive=has_model, size="sm")
    with gr.Accordion("Decoding", open=False):
        mode = gr.Radio([GREEDY, SAMPLING], value=GREEDY, label="Mode")
        with gr.Row():
            temperature = gr.Slider(0.05, 2.0, value=0.7, step=0.05, label="Temperature (sampling)")
            top_p = gr.Slider(0.05, 1.0, value=0.9, step=0.05, label="Top-p (sampling)")
        max_new_tokens = gr.Slider(16, 2048, value=512, step=16, label="Max new tokens")
    return ChatUI(chatbot, chips, question, send, stop, new_chat, [mode, temperature, top_p, max_new_tokens])


def colour_tags(text: str) -> str:
    """HTML of a text with each <PromptN> in its region's colour; everything else escaped."""
    return "".join(
        escape(piece)
        if index is None
        else f'<span class="gar-tag gar-tag-{index % len(REGION_COLOURS)}">{escape(piece)}</span>'
        for piece, index in split_tags(text)
    )


def render(session: Session) -> list:
    ws = session.workspace
    messages = [{"role": t.role, "content": colour_tags(t.text) or "…"} for t in ws.conversation.turns]
    chips = [{"tag": r.tag, "colour": r.colour, "ink": ink(r.colour)} for r in ws.regions]
    return [messages, chips]


# ---------------------------------------------------------------- handlers


def ask(session: Session, question: str, *settings):
    """``/ask``: the answer streams into the chat; the question box empties once it is taken."""
    ws = session.workspace
    ws.require_gar()
    cleared = False  # the box empties once, so a question typed meanwhile is not wiped at the end
    for _text in ws.stream_answer(question, decoding_settings(*settings)):
        yield None if cleared else {"question": ""}
        cleared = True
    yield None if cleared else {"question": ""}


def stop_answer(state: Session | None) -> None:
    """``/stop``: end the answer or caption being generated (what was generated is kept)."""
    if isinstance(state, Session):
        state.workspace.stop.set()


def new_conversation(session: Session) -> str:
    session.workspace.new_conversation()
    return "Started a new conversation."


def wire(ui: ChatUI, wiring: Wiring, chat_views: list[View]) -> None:
    def asking(**options) -> dict:
        event = wiring.event(
            ask, [ui.question, *ui.settings], views=chat_views, extra={"question": ui.question}, gpu=True
        )
        return {**event, "concurrency_limit": 1, "concurrency_id": "gar", **options}

    ui.send.click(**asking(api_name="ask"))
    ui.question.submit(**asking(api_visibility="private"))
    ui.stop.click(stop_answer, [wiring.state], None, queue=False, api_name="stop")
    ui.new_chat.click(**wiring.event(new_conversation), api_name="new_conversation")
    ui.chatbot.clear(**wiring.event(new_conversation), api_visibility="private")
