"""The investigation benchmark: generated cases, their questions, the answers kept apart,
and a scorer (docs/benchmark.md)."""
