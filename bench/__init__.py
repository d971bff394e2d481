"""The benchmark suite: `bench/run --help`, figures explained in docs/benchmarks.md."""
