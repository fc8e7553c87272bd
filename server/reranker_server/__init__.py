"""Serve a cross-encoder reranker over HTTP with ONNX Runtime, dynamic batching and warm-up-gated readiness."""
