"""Latent tokenizers (MMAIF Sect. 3.2): the Tokenizer protocol, our KL-VAE, TAEF2, diffusers, pixel-unshuffle.

from allfuse.tokenizer import load_tokenizer
tok = load_tokenizer()            # our KL-VAE, f=8, z=16, shipped with the package
z = tok.encode(x)                 # x (B, 3, H, W) in [0, 1] -> z (B, 16, ceil(H/8), ceil(W/8))
y = tok.decode(z, size=x.shape[-2:])
"""

from allfuse.tokenizer.base import Tokenizer, pad_to_multiple
from allfuse.tokenizer.cache import LatentCache
from allfuse.tokenizer.load import load_tokenizer

__all__ = ["LatentCache", "Tokenizer", "load_tokenizer", "pad_to_multiple"]
