"""The peer comparisons of issue 7: ``python -m benchmarks`` runs them and writes BENCHMARKS.md.

Each case module (``bench_*.py``) measures our bus against its peers in the same process run;
``_harness`` times them fairly, ``_report`` renders the results.
"""
