"""Test corpora: inputs kept as data, run by the tests that name them."""
