"""Deployment sizing: scenarios, open-loop steps, the knee of the latency curve, and the report."""
