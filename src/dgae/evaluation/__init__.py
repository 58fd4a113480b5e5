"""Evaluation: metric maths, feature extractors, the reconstruction protocol, benchmarks."""
