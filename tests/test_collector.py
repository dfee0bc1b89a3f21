"""The CLI's collector settings hold for the ranking only: frozen input, a larger young
threshold, both undone after (also on an error), and the ranking unchanged by them."""

from __future__ import annotations

import gc

import pytest

from prp.cli.collector import YOUNG_THRESHOLD, input_loaded


def test_settings_hold_for_the_block_and_are_undone_even_on_error():
    threshold, frozen = gc.get_threshold(), gc.get_freeze_count()
    loaded = [{"text": str(i)} for i in range(1000)]  # the "input": alive when the block starts
    with pytest.raises(RuntimeError), input_loaded():
        assert gc.get_freeze_count() >= frozen + len(loaded)
        assert gc.get_threshold() == (YOUNG_THRESHOLD, *threshold[1:])
        raise RuntimeError("the ranking failed")
    assert gc.get_threshold() == threshold and gc.get_freeze_count() == frozen
