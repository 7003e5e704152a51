"""The OCR engine of the offline tagger: RapidOCR (PP-OCRv4 Chinese + English ONNX models in
`rapidocr-onnxruntime`), loaded once, with the word spaces its recogniser sees but does not
write.

The PP-OCRv4 recogniser is trained mostly on Chinese, which has no spaces: between words in
capitals (`BUY NOW`) its space class is outvoted by CTC's blank in every column of the gap,
and greedy decoding reads `BUYNOW`. The space is still far more likely there than between
two letters of one word, so `WordSpaces` writes it where it reaches SPACE_PROB
(DASH_SPACE_PROB next to a dash, whose gaps the recogniser sees least).

Imported only by `offline.py`: the Gemini worker never loads it.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from shared.once import once

log = logging.getLogger("vision_to_tag.offline")

SPACE_PROB = 0.01
"""A gap between two characters is a word space where the recogniser gives the space class
at least this probability in one of its columns. Measured on 315 rendered captions (seven
fonts, three sizes): ≥ 0.005 at 1,008 word gaps, ≤ 0.006 between 2,853 letters of a word;
the word gaps below 0.01 were all next to a dash."""

DASH_SPACE_PROB = 0.002
"""The same, for a gap next to a dash: ≥ 0.0024 beside a spaced dash (`NOW - FREE`) and
≤ 0.0011 beside a hyphen (`T-SHIRT`), on 214 dashes in key-frame JPEGs."""

DASHES = "-–—"
FIRST_UNSPACED = 0x2E80
"""From here on (CJK radicals, kana, ideographs, full-width forms) text is written without
spaces: a space is written only between two characters below it (Latin, digits, signs)."""


class WordSpaces:
    """RapidOCR's CTC decoder, given the recogniser's output with each word gap's likeliest
    space column ranked above blank (their probabilities swapped, so the line's confidence
    stays what the recogniser said)."""

    def __init__(self, decode: Any) -> None:
        self.decode = decode
        self.space = decode.dict[" "]
        self.spaced = np.array([len(char) == 1 and char != " " and ord(char) < FIRST_UNSPACED
                                for char in decode.character])
        self.dash = np.array([char in DASHES for char in decode.character])

    def __call__(self, preds: np.ndarray, *args: Any, **kwargs: Any) -> Any:
        return self.decode(np.stack([self.with_spaces(line) for line in preds]),
                           *args, **kwargs)

    def with_spaces(self, probs: np.ndarray) -> np.ndarray:
        """One line's (columns × classes) probabilities, word spaces promoted."""
        best = probs.argmax(axis=1)
        written = np.flatnonzero(best != 0)
        promoted = probs.copy()
        for left, right in zip(written, written[1:], strict=False):
            pair = best[[left, right]]
            if right - left < 2 or not self.spaced[pair].all():
                continue
            column = left + 1 + int(probs[left + 1:right, self.space].argmax())
            needed = DASH_SPACE_PROB if self.dash[pair].any() else SPACE_PROB
            if probs[column, self.space] >= needed:
                promoted[column, [0, self.space]] = probs[column, [self.space, 0]]
        return promoted


@once
def engine() -> Any:
    """The OCR engine, loaded once per process (not once per concurrent first task:
    each copy is hundreds of MB); None where it is not installed (the Cloud
    Functions image installs requirements.txt only: production tags with Gemini)."""
    try:
        from rapidocr_onnxruntime import RapidOCR
    except ImportError:
        log.warning("rapidocr-onnxruntime is not installed: no on-screen text "
                    "(pip install --no-deps -r requirements-offline.txt)")
        return None
    # key frames are at most 768 px on their long side: detect at that size instead of
    # upscaling their short side to 736 (same text read, half the time, 40% less memory);
    # captions are upright, so no 180° direction classifier
    loaded = RapidOCR(det_limit_type="max", det_limit_side_len=768, use_cls=False,
                      intra_op_num_threads=2)
    # RapidOCR has no hook for decoding: its recogniser's decoder is an attribute (1.4,
    # pinned in requirements-offline.txt)
    loaded.text_rec.postprocess_op = WordSpaces(loaded.text_rec.postprocess_op)
    return loaded
