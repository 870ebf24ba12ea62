"""Research tools kept apart from the product: the gate's own benchmark and the naive timer."""
