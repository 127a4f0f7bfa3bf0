"""Benchmarks, run by hand as scripts (see README.md); a package so that they share bench/harness.py."""
