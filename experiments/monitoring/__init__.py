"""Watching the served model: the drift of what it is asked, against what it learnt from."""
