"""The web demo, `allfuse serve`: upload images, fuse them, compare and download (needs `allfuse[web]`).

`backend.py` does the work without any web library (reading, fusing, writing the PNG, one-line errors);
`app.py` lays it out in Gradio and serves it, on loopback unless told otherwise.
"""
