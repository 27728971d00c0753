"""GAR App: point at regions of an image and talk about them with GAR (Grasp Any Region)."""

__version__ = "0.1.0"
