"""Statistics of latency samples and the latency verdicts built on them."""
