"""Gradio UI pieces of GAR App. Each module builds one part of the page and its handlers;
``app.py`` wires them. All behaviour lives in ``gar_app``; these modules only translate
between widgets and ``gar_app.workspace.Workspace``."""
