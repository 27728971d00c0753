"""File formats: the project's own ``gar-app/1`` documents and the formats others use.

- ``document``: the image document (one image or video frame: regions, captions, dialogue);
- ``video_document``: the video document (a tracked video: per region a mask on every frame);
- ``training``: GAR's training records;
- ``jsonio``: checked reading and the indented writer both document kinds share.

The RLE codec every format uses is ``gar_app.rle``.
"""

FORMAT = "gar-app/1"
