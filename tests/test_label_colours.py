"""A data's own labels get colours of their own in every picture."""

from __future__ import annotations

from ser_app.timeline_plot import EMOTION_COLOURS, emotion_colour


def test_own_labels_are_coloured_by_name_and_canonical_ones_keep_theirs():
    assert emotion_colour("angry") == EMOTION_COLOURS["angry"]
    own = {label: emotion_colour(label) for label in ("frustrated", "satisfied", "anger", "joy")}
    assert own == {label: emotion_colour(label) for label in own}  # the same every time
    assert len(set(own.values())) >= 3  # told apart (a palette, so two may share)
    assert not set(own.values()) & set(EMOTION_COLOURS.values())
