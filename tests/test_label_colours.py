"""A data's own labels get colours of their own in every picture."""

from __future__ import annotations

from ser_app.timeline_plot import EMOTION_COLOURS, label_colours


def test_own_labels_get_distinct_colours_and_canonical_ones_keep_theirs():
    labels = ["anger", "joy", "frustrated", "satisfied", "neutral", "sorrow"]
    colours = label_colours(labels)
    assert colours["neutral"] == EMOTION_COLOURS["neutral"]
    own = [colours[label] for label in labels if label != "neutral"]
    assert len(set(own)) == len(own)  # every own label told apart
    assert not set(own) & set(EMOTION_COLOURS.values())
    assert label_colours(reversed(labels)) == colours  # the same labels, the same colours
