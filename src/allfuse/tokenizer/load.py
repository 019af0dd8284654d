"""`load_tokenizer(name_or_path)`: one entry point for every autoencoder we can work in.

Accepted names and paths:
  * ``"default"``: our KL-VAE shipped in ``allfuse/tokenizer/weights/default.{safetensors,json}``.
  * ``"pixel-unshuffle"`` (or ``"pixel-unshuffle-f<N>"``): the exact, parameter-free ablation tokenizer.
  * a ``.safetensors`` file with its ``.json`` beside it (what ``train-tokenizer`` exports), or a folder
    holding exactly one such pair: our KL-VAE.
  * a folder with ``taef2_encoder.pth`` and ``taef2_decoder.pth``: TAEF2 (FLUX.2 tiny autoencoder).
  * a folder with a diffusers ``config.json`` whose ``_class_name`` is ``AutoencoderKL`` (needs diffusers).
Nothing is ever downloaded.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from allfuse.tokenizer.base import Precision, Tokenizer

WEIGHTS_DIR = Path(__file__).parent / "weights"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "default.safetensors"


def load_tokenizer(name_or_path: str | Path = "default", precision: Precision | None = None) -> Tokenizer:
    """Return a Tokenizer by name or local path (module docstring); `precision` overrides its default."""
    from allfuse.tokenizer.klvae import VAETokenizer, load_vae

    name = str(name_or_path)
    if name == "default":
        if not DEFAULT_WEIGHTS.is_file():
            raise FileNotFoundError(f"{DEFAULT_WEIGHTS}: the default tokenizer weights are missing")
        return VAETokenizer(load_vae(DEFAULT_WEIGHTS), precision or "bf16", name="default")
    m = re.fullmatch(r"pixel-unshuffle(?:-f(\d+))?", name)
    if m:
        from allfuse.tokenizer.pixel import PixelUnshuffleTokenizer

        return PixelUnshuffleTokenizer(int(m.group(1) or 8))
    path = Path(name_or_path)
    if path.suffix == ".safetensors" and path.is_file():
        return VAETokenizer(load_vae(path), precision or "bf16", name=path.stem)
    if path.is_dir():
        return _load_folder(path, precision)
    raise FileNotFoundError(f"{name}: not a tokenizer name (default, pixel-unshuffle) nor an existing path")


def _load_folder(path: Path, precision: Precision | None) -> Tokenizer:
    """Dispatch a folder to TAEF2, diffusers AutoencoderKL or our KL-VAE by the files it holds."""
    from allfuse.tokenizer.klvae import VAETokenizer, load_vae

    if (path / "taef2_encoder.pth").is_file() and (path / "taef2_decoder.pth").is_file():
        from allfuse.tokenizer.taef2 import TAEF2Tokenizer

        return TAEF2Tokenizer(path, precision or "fp32")
    config = path / "config.json"
    if config.is_file() and json.loads(config.read_text()).get("_class_name") == "AutoencoderKL":
        from allfuse.tokenizer.diffusers_vae import DiffusersVAETokenizer

        return DiffusersVAETokenizer(path, precision or "fp32")
    ours = [p for p in sorted(path.glob("*.safetensors")) if _is_klvae_json(p.with_suffix(".json"))]
    if len(ours) == 1:
        return VAETokenizer(load_vae(ours[0]), precision or "bf16", name=ours[0].stem)
    raise FileNotFoundError(
        f"{path}: no TAEF2 .pth pair, diffusers AutoencoderKL or single allfuse tokenizer"
    )


def _is_klvae_json(path: Path) -> bool:
    """True when `path` is the JSON half of one of our tokenizers."""
    try:
        return json.loads(path.read_text()).get("kind") == "klvae"
    except (OSError, ValueError):
        return False
