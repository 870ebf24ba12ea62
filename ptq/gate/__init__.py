"""The regression gate: judges, comparisons of two runs, interleaved A/B and its duet workers."""
