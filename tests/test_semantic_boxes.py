"""Parsing VLM answers into boxes, mapping them to views, masks and their inversion."""
import json
import random

import numpy as np
import pytest

from semantic.boxes import (boxes_to_mask, clean_boxes, invert_mask, parse_boxes,
                            to_view_pixels)

pytestmark = pytest.mark.unit

ONE = '[{"bbox_2d": [100, 200, 300, 400], "label": "cup"}]'


def test_plain_json_list():
    p = parse_boxes(ONE)
    assert p.status == "ok" and p.coords == "relative"
    assert p.boxes == [(100.0, 200.0, 300.0, 400.0)] and p.labels == ["cup"]


@pytest.mark.parametrize("text", [
    "```json\n" + ONE + "\n```",
    "Sure! Here are the regions:\n```\n" + ONE + "\n```\nLet me know if you need more.",
    "The cup is at " + ONE + " in the image.",
    '{"bbox_2d": [100, 200, 300, 400], "label": "cup"}',
    '[{"label": "cup", "bbox_2d": [100, 200, 300, 400]}, {"bbox_2d": [5, 5',  # truncated
])
def test_messy_answers_keep_the_complete_box(text):
    p = parse_boxes(text)
    assert p.boxes[0] == (100.0, 200.0, 300.0, 400.0)
    assert p.labels[0] == "cup"
    assert len(p.boxes) == 1


def test_truncated_list_keeps_every_complete_entry():
    text = ('[{"bbox_2d": [1, 2, 30, 40], "label": "a"}, {"bbox_2d": [50, 60, 70, 80], '
            '"label": "b"}, {"bbox_2d": [90, 9')
    p = parse_boxes(text)
    assert p.status == "partial"
    assert p.boxes == [(1, 2, 30, 40), (50, 60, 70, 80)] and p.labels == ["a", "b"]


@pytest.mark.parametrize("text", ["", "   ", None, "I cannot see anything.", "[]", "{}",
                                  '[{"bbox_2d": [1, 2, 3]}]', '{"bbox_2d": "none"}', "]]]{{{",
                                  '{"bbox_2d": [1, 2, true, 4]}'])
def test_answers_without_boxes(text):
    p = parse_boxes(text)
    assert p.boxes == [] and p.status in ("empty", "unparseable")


def test_absolute_pixels_detected_and_mapped():
    p = parse_boxes('[{"bbox_2d": [640, 100, 1280, 700]}]')
    assert p.coords == "absolute"
    (b,) = to_view_pixels(p, (1280, 960), (0, 0, 1280, 960), (320, 240))
    assert b == pytest.approx((160, 25, 320, 175))


def test_relative_mapped_through_a_resize():
    p = parse_boxes('[{"bbox_2d": [0, 0, 500, 1000]}]')
    (b,) = to_view_pixels(p, (192, 96), (0, 0, 192, 96), (200, 100))
    assert b == pytest.approx((0, 0, 100, 100))


def test_side_by_side_composite_maps_by_the_composite_width():
    # The model saw [render | photo], 2W wide. A box on the left half at relative x 100..400
    # is at 0.2W..0.8W of the render, not 0.1W..0.4W (the single-image-width bug).
    W, H = 160, 90
    p = parse_boxes('[{"bbox_2d": [100, 0, 400, 1000]}, {"bbox_2d": [600, 0, 900, 500]}]')
    left = to_view_pixels(p, (2 * W, H), (0, 0, W, H), (W, H))
    assert left[0] == pytest.approx((32, 0, 128, 90))
    assert left[1] is None  # centre in the other half
    right = to_view_pixels(p, (2 * W, H), (W, 0, W, H), (W, H))
    assert right[1] == pytest.approx((32, 0, 128, 45))


def test_clean_clamps_reorders_and_caps():
    boxes = [(50, 40, -10, -5), (0, 0, 1, 50), (0, 0, 100, 100), None, (10, 10, 20, 20),
             (30, 30, 40, 40), (60, 60, 70, 70)]
    kept, labels, notes = clean_boxes(boxes, list("abcdefg"), (100, 100), max_boxes=2,
                                      max_box_frac=0.5)
    assert kept == [(0, 0, 50, 40), (10, 10, 20, 20)]
    assert labels == ["a", "e"]
    assert len(notes) == 5  # degenerate, too big, outside, two over the cap


def test_fuzzed_answers_never_raise_and_boxes_stay_inside():
    rng = random.Random(0)
    pieces = ['{"bbox_2d": [', "]", "}", ",", '"label": "x"', "```json", "```", "[", "{",
              "1e9", "-50", "999", "0", "300.5", "nan", "text ", '"bbox": [', "\n"]
    for _ in range(500):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 30)))
        p = parse_boxes(text)
        mapped = to_view_pixels(p, (64, 64), (0, 0, 64, 64), (80, 60))
        kept, _, _ = clean_boxes(mapped, p.labels, (80, 60), 8, 0.5)
        for x1, y1, x2, y2 in kept:
            assert 0 <= x1 < x2 <= 80 and 0 <= y1 < y2 <= 60
            assert (x2 - x1) * (y2 - y1) <= 0.5 * 80 * 60
        assert len(kept) <= 8


def test_huge_boxes_dropped_by_max_box_frac():
    p = parse_boxes(json.dumps([{"bbox_2d": [0, 0, 1000, 1000]}, {"bbox_2d": [0, 0, 500, 500]}]))
    mapped = to_view_pixels(p, (100, 100), (0, 0, 100, 100), (100, 100))
    kept, _, notes = clean_boxes(mapped, p.labels, (100, 100), 8, 0.3)
    assert kept == [(0, 0, 50, 50)] and "covers more than" in notes[0]


def test_mask_and_inversion():
    m = boxes_to_mask([(1, 1, 3, 2), (2.6, 0, 4, 1)], (5, 3))
    assert m.tolist() == [[False, False, False, True, False],
                          [False, True, True, False, False],
                          [False, False, False, False, False]]
    inv = invert_mask(m)
    assert inv.sum() == m.size - m.sum() and not (inv & m).any()
    assert boxes_to_mask([], (4, 4)).sum() == 0
    assert boxes_to_mask([(0, 0, 4, 4)], (4, 4)).all()
    assert np.array_equal(invert_mask(boxes_to_mask([(0, 0, 4, 4)], (4, 4))), np.zeros((4, 4), bool))
