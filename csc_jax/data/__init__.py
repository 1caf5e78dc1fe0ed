"""Data: corpora, sources, host pipeline, on-device mixing, trial lists."""
