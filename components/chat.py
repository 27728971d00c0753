"""The multi-turn chat about the regions: streamed answers, Stop, decoding settings."""

from __future__ import annotations

import gradio as gr

from components.common import on_gpu, ui_action
from components.page import Page, chat_messages
from gar_app.model.generation import GenerationSettings

GREEDY, SAMPLING = "Greedy (as in the paper)", "Sampling"


def decoding_settings(mode: str, temperature: float, top_p: float, max_new_tokens: float) -> GenerationSettings:
    return GenerationSettings(
        max_new_tokens=int(max_new_tokens),
        do_sample=mode == SAMPLING,
        temperature=float(temperature),
        top_p=float(top_p),
    )


def build(page: Page) -> None:
    page.chatbot = gr.Chatbot(
        label="Chat about the regions",
        height=420,
        sanitize_html=False,  # every message is escaped by colour_tags before the tags are coloured
        render_markdown=False,
        buttons=["copy"],
        placeholder="Ask about your regions, e.g. <i>What is the relationship between &lt;Prompt0&gt; and "
        "&lt;Prompt1&gt;?</i> Click a region's chip to insert its tag.",
    )
    has_model = page.services.gar is not None
    page.question = gr.Textbox(
        label="Question",
        placeholder="Mention regions as <Prompt0>, <Prompt1>, …" if has_model else "The chat needs a GAR model.",
        lines=2,
        max_lines=6,
        interactive=has_model,
    )
    with gr.Row():
        page.send = gr.Button("Send", variant="primary", interactive=has_model)
        page.stop = gr.Button("Stop", variant="stop", interactive=has_model)
        page.new_chat = gr.Button("New conversation", interactive=has_model)
    with gr.Accordion("Decoding", open=False):
        page.sampling = gr.Radio([GREEDY, SAMPLING], value=GREEDY, label="Mode")
        with gr.Row():
            page.temperature = gr.Slider(0.05, 2.0, value=0.7, step=0.05, label="Temperature (sampling)")
            page.top_p = gr.Slider(0.05, 1.0, value=0.9, step=0.05, label="Top-p (sampling)")
        page.max_new_tokens = gr.Slider(16, 2048, value=512, step=16, label="Max new tokens")


def wire(page: Page) -> None:
    settings_inputs = [page.sampling, page.temperature, page.top_p, page.max_new_tokens]

    @ui_action(page)
    def on_question_sent(state, question, *settings):
        ws = page.workspace(state)
        ws.require_gar()
        stream = ws.stream_answer(question, decoding_settings(*settings))
        first = True
        for _text in stream:
            yield {page.state: ws, page.chatbot: chat_messages(ws), page.question: "" if first else gr.update()}
            first = False
        yield {page.state: ws, page.chatbot: chat_messages(ws), page.question: ""}

    def on_stop_clicked(state):
        page.workspace(state).stop.set()

    @ui_action(page)
    def on_new_chat_clicked(state):
        ws = page.workspace(state)
        ws.new_conversation()
        return {page.state: ws, page.chatbot: chat_messages(ws)}

    sent = {
        "fn": on_gpu(on_question_sent),
        "inputs": [page.state, page.question, *settings_inputs],
        "outputs": [page.state, page.chatbot, page.question, page.notice],
        "concurrency_limit": 1,
        "concurrency_id": "gar",
    }
    page.send.click(**sent, api_name="ask")
    page.question.submit(**sent, api_visibility="private")
    page.stop.click(on_stop_clicked, [page.state], None, queue=False, api_name="stop")
    page.new_chat.click(
        on_new_chat_clicked, [page.state], [page.state, page.chatbot, page.notice], api_name="new_conversation"
    )
