"""GAR App in the browser (the full UI is being built; this entry point already starts)."""

from __future__ import annotations

import argparse

import gradio as gr


def build_demo() -> gr.Blocks:
    with gr.Blocks(title="GAR App") as demo:
        gr.Markdown("# GAR App\nRegion-level chat with GAR (Grasp Any Region). The interface is coming next.")
    return demo


def main() -> None:
    parser = argparse.ArgumentParser(description="Start the GAR App web UI.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7860)
    args = parser.parse_args()
    build_demo().launch(server_name=args.host, server_port=args.port)


if __name__ == "__main__":
    main()
