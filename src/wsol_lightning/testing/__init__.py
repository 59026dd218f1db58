"""Helpers for tests and parity tools (golden fixtures produced by the official implementations)."""

from wsol_lightning.testing.parity import (
    SeededDropout,
    assert_matches,
    key_shapes_of,
    load_fixture,
    save_fixture,
    seeded_inputs,
    seeded_state_dict,
)

__all__ = [
    "SeededDropout", "assert_matches", "key_shapes_of", "load_fixture", "save_fixture", "seeded_inputs",
    "seeded_state_dict",
]
