"""Text encoder: offline loading, masks, exact caching (memory and disk), LRU, T5 from a local folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from allfuse.text import load_text_encoder
from allfuse.text.encoder import minilm_folder

PROMPTS = [
    "Fuse the infrared and visible images.",
    "[FUSION]. <MULTI-EXPOSURE>. Keep the well-exposed parts of each image and remove the noise.",
    "sharp",
    "Fuse the infrared and visible images.",  # a repeat
]


@pytest.fixture(scope="module")
def encoder():
    mp = pytest.MonkeyPatch()
    mp.setenv("HF_HUB_OFFLINE", "1")  # the network is blocked: loading must not need it
    mp.setenv("TRANSFORMERS_OFFLINE", "1")
    try:
        yield load_text_encoder()
    finally:
        mp.undo()


def test_shapes_and_masks_match_token_counts(encoder) -> None:
    tokens, mask = encoder.encode(PROMPTS)
    counts = [len(encoder.encoder.token_ids(p)) for p in PROMPTS]
    assert tokens.shape == (4, max(counts), 384) and tokens.dtype == torch.float32
    assert mask.dtype == torch.bool
    assert mask.sum(dim=1).tolist() == counts
    assert torch.all(tokens[~mask] == 0)
    assert torch.equal(tokens[0], tokens[3])


def test_cached_results_equal_fresh_ones_exactly(encoder, tmp_path: Path) -> None:
    fresh = load_text_encoder(cache_dir=tmp_path)
    t1, m1 = fresh.encode(PROMPTS)
    assert fresh.stats["encoded"] == 3  # the repeat is encoded once
    t2, m2 = fresh.encode(PROMPTS)  # memory hits
    assert torch.equal(t1, t2) and torch.equal(m1, m2)
    from_disk = load_text_encoder(cache_dir=tmp_path)
    t3, m3 = from_disk.encode(PROMPTS)
    assert from_disk.stats["encoded"] == 0 and from_disk.stats["disk"] == 3
    assert torch.equal(t1, t3) and torch.equal(m1, m3)
    # a fresh encode of one prompt alone equals its row in a mixed batch (never padded while encoding)
    alone, _ = load_text_encoder().encode([PROMPTS[2]])
    n = alone.shape[1]
    assert torch.equal(alone[0], t1[2, :n])


def test_lru_evicts_and_keys_are_exact(encoder) -> None:
    encoder.max_items = 2
    encoder.memory.clear()
    encoder.encode(["a", "b", "c"])
    assert len(encoder.memory) == 2 and encoder.key("a") not in encoder.memory
    assert encoder.key("a") != encoder.key("a ")  # the exact text, no normalisation
    encoder.max_items = 4096


def test_t5_encoder_from_local_folder(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    cfg = transformers.T5Config(
        vocab_size=30522, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4, decoder_start_token_id=0
    )
    torch.manual_seed(0)
    transformers.T5EncoderModel(cfg).save_pretrained(tmp_path / "t5")
    src = minilm_folder()
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(src / name, tmp_path / "t5" / name)  # any tokenizer with a matching vocabulary will do
    enc = load_text_encoder(tmp_path / "t5")
    assert enc.encoder.kind == "t5" and enc.dim == 32
    tokens, mask = enc.encode(PROMPTS[:2])
    assert tokens.shape[::2] == (2, 32)
    assert mask.sum(1).tolist() == [len(enc.encoder.token_ids(p)) for p in PROMPTS[:2]]
    assert enc.id != load_text_encoder().id
