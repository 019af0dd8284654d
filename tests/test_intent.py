"""Reading what a prompt asks (allfuse.data.prompts.read_intent) and reading a [SEG] output back into a mask
(allfuse.data.seg.mask_from_overlay)."""

import numpy as np
import pytest

from allfuse.data.prompts import bank, read_intent
from allfuse.data.seg import OVERLAY_ALPHA, mask_from_overlay, overlay, overlay_alpha, synthetic_scene

# Untagged requests worded unlike anything in the prompt bank: (prompt, task, subtag, seg class).
PARAPHRASES = [
    ("make it brighter", "CONTROL", "LIGHT+", ""),
    ("Could you make the picture way brighter?", "CONTROL", "LIGHT++", ""),
    ("brighten it up a tiny bit", "CONTROL", "LIGHT+", ""),
    ("turn the brightness up a lot", "CONTROL", "LIGHT++", ""),
    ("crank up the luminance massively", "CONTROL", "LIGHT++", ""),
    ("darken it", "CONTROL", "LIGHT-", ""),
    ("I'd like it much darker", "CONTROL", "LIGHT--", ""),
    ("tone the brightness down slightly", "CONTROL", "LIGHT-", ""),
    ("make the whole thing dimmer", "CONTROL", "LIGHT-", ""),
    ("more contrast please", "CONTROL", "CONTRAST+", ""),
    ("bump up the contrast", "CONTROL", "CONTRAST+", ""),
    ("contrast should be higher", "CONTROL", "CONTRAST+", ""),
    ("I want less contrast", "CONTROL", "CONTRAST-", ""),
    ("reduce the contrast a bit", "CONTROL", "CONTRAST-", ""),
    ("the result looks too dark", "CONTROL", "LIGHT+", ""),  # the output judged: change it
    ("hmm, the output seems way too bright", "CONTROL", "LIGHT--", ""),
    ("make the result look like it was shot at night", "CONTROL", "LIGHT--", ""),  # a time of day
    ("fuse them so it feels like evening", "CONTROL", "LIGHT--", ""),
    ("make it look as if taken at midday", "CONTROL", "LIGHT++", ""),
    ("it looks like twilight, brighten it a little", "CONTROL", "LIGHT+", ""),  # the level words win
    ("fuse the night image with the infrared one", "FUSION", None, ""),  # a night INPUT: plain fusion
    ("segment the car", "SEG", None, "car"),
    ("highlight the people", "SEG", None, "people"),
    ("Highlight all pedestrians in the scene", "SEG", None, "pedestrians"),
    ("can you mask the bicycle?", "SEG", None, "bicycle"),
    ("outline every tree", "SEG", None, "tree"),
    ("where is the dog?", "SEG", None, "dog"),
    ("show me where the cars are", "SEG", None, "cars"),
    ("isolate the person on the left", "SEG", None, "person"),
    ("paint the building blue", "SEG", None, "building"),
    ("locate the traffic sign please", "SEG", None, "traffic sign"),
    ("fuse the infrared and the visible image", "FUSION", None, ""),
    ("get rid of the rain and fuse", "FUSION", None, ""),
    ("dehaze and merge them", "FUSION", None, ""),
]


def bank_phrases() -> set[str]:
    """Every phrase of the bank, lower case, with its placeholders removed."""
    out = set()
    for group in ("tasks", "control", "degradations"):
        for entry in bank()[group].values():
            for phrase in entry["train"] + entry["held_out"]:
                out.add(phrase.lower())
    return out


@pytest.mark.parametrize(("prompt", "task", "subtag", "target"), PARAPHRASES)
def test_untagged_paraphrases_map_to_tags(prompt: str, task: str, subtag: str | None, target: str) -> None:
    assert prompt.lower() not in bank_phrases() and not any(prompt.lower() in p for p in bank_phrases())
    intent = read_intent(prompt)
    assert (intent.task, intent.subtag, intent.target, intent.source) == (task, subtag, target, "words")
    assert intent.instruction == prompt  # kept for the report; a [CONTROL] model gets its level's wording


def test_the_bank_is_read_as_it_was_written() -> None:
    for level, entry in bank()["control"].items():
        for phrase in entry["train"]:
            assert (read_intent(phrase).task, read_intent(phrase).subtag) == ("CONTROL", level), phrase
    for phrase in bank()["tasks"]["seg"]["train"]:
        intent = read_intent(phrase.replace("{cls}", "traffic light"))
        assert (intent.task, intent.target) == ("SEG", "traffic light"), phrase
    for kind in ("vif", "mef", "mff", "m3"):
        for phrase in bank()["tasks"][kind]["train"] + bank()["tasks"][kind]["held_out"]:
            assert read_intent(phrase).task == "FUSION", phrase
    for entry in bank()["degradations"].values():  # restoration requests stay fusion instructions
        for phrase in entry["train"] + entry["held_out"]:
            text = phrase.replace("{sev}", "heavy").replace("{sevly}", "heavily")
            assert (read_intent(text).task, read_intent(text).source) == ("FUSION", "words"), phrase


@pytest.mark.parametrize("prompt", ["asdf qwerty", "!!!", "lorem ipsum dolor", "hello", "   x  "])
def test_garbage_is_plain_fusion(prompt: str) -> None:
    intent = read_intent(prompt)
    assert (intent.task, intent.subtag, intent.instruction, intent.source) == ("FUSION", None, "", "default")
    assert "no instruction understood" in intent.describe()
    assert read_intent(None) == intent


def test_tags_win_and_fill_what_they_leave_open() -> None:
    tagged = read_intent("[CONTROL]. <LIGHT-->. This is the first image <img><|image_1|></img>, and "
                         "this is the second image <img><|image_2|></img>. Please generate the image "
                         "based on the following requirements: darker")  # fmt: skip
    assert (tagged.task, tagged.subtag, tagged.instruction) == ("CONTROL", "LIGHT--", "darker")
    assert read_intent("[CONTROL]. a bit brighter").subtag == "LIGHT+"  # the level from the words
    assert read_intent("[CONTROL]. whatever").subtag is None  # refused by the pipeline (check_intent)
    assert read_intent("[SEG]. the car.").target == "car"
    assert read_intent("[SEG]. highlight the bus please").target == "bus"
    assert read_intent("[FUSION]. <MULTI-FOCUS>. all sharp").subtag == "MULTI-FOCUS"
    with pytest.raises(ValueError, match="unknown task tag"):
        read_intent("[DANCE]. go")
    assert '[CONTROL] <LIGHT--> "darker" (from its tags)' == tagged.describe()


def test_a_seg_overlay_is_read_back_into_its_mask() -> None:
    rng = np.random.default_rng(0)
    image, label, _ = synthetic_scene(rng, (96, 128))
    box = np.zeros((96, 128), bool)
    box[20:60, 30:90] = True
    tinted = overlay(image, box)
    a = overlay_alpha(tinted, image)
    assert np.allclose(a[box], OVERLAY_ALPHA, atol=1e-4) and np.allclose(a[~box], 0, atol=1e-4)
    assert (mask_from_overlay(tinted, image) ^ box).sum() <= 12  # exact but 3 px at each corner
    for k in (1, 2):
        shape = label == k
        found = mask_from_overlay(overlay(image, shape), image)
        assert (found & shape).sum() / (found | shape).sum() > 0.85
    gray = image.mean(axis=2)
    assert (mask_from_overlay(overlay(gray, box), gray) ^ box).sum() <= 12
    assert not mask_from_overlay(image, image).any()  # an untinted output has no mask
