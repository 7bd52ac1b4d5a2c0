"""pyop's benchmark suite (not a test): ``python -m benchmarks --help``.

* :mod:`benchmarks.flows` -- full flows per storage backend, timed against one signature;
* :mod:`benchmarks.memcheck` -- memory of 100 000 live tokens, purge of expired ones;
* :mod:`benchmarks.load` -- throughput of a WSGI provider under waitress with 1, 2, 4 threads;
* :mod:`benchmarks.profile_flow` -- where the non-signature time of a memory flow goes;
* :mod:`benchmarks.engines` -- starts Redis / PostgreSQL for the run;
* :mod:`benchmarks.counting` -- counts storage round trips per flow.
"""
