"""Kopf operator that turns a RerankerDeployment into a warmed-up, autoscaled reranking service."""
