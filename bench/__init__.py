"""Side-by-side latency benchmark of kube-reranker's server against the usual CPU recipes.

Run with `make bench` (= `python -m bench.run`). Timing is measured here and reported as ratios;
it is never asserted in the test suite.
"""
