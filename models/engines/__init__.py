"""Engines run batches of tokenized inputs on a device and return pooled or token vectors."""
