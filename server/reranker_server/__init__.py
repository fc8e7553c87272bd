"""Serve a cross-encoder reranker: ONNX Runtime, dynamic batching, warm-up-gated readiness."""
