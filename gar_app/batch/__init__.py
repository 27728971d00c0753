"""Captions for every region of a COCO dataset (``gar-app batch``).

- ``coco`` reads an instances file into work items (one per annotation, or one per image
  with a question) and decodes their masks (RLE or polygons),
- ``worker`` loads GAR once and answers items; the same class runs in-process and as the
  Ray actor,
- ``journal`` is the output: JSON Lines written whole, fsync'd, resumable,
- ``local`` and ``ray_runner`` run the items, ``cli`` is the command.
"""
