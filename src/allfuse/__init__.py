"""allfuse: all-in-one, language-guided image fusion with restoration."""

__version__ = "0.1.0"
