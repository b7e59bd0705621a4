"""Benchmark harness for 汇容客 (`make bench`). Only ever targets 127.0.0.1."""
