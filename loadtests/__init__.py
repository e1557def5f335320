"""Benchmarks, the late-chunking evaluation and the deployment-sizing tool (`python -m loadtests`)."""
