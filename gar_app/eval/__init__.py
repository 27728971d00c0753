"""GARBench: run a GAR checkpoint on the benchmark and score it the way the paper does."""
