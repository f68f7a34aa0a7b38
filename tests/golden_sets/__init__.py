"""Tests of goldwatch.golden_sets and goldwatch.examples."""
