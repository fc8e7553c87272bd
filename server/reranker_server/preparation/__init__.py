"""Model preparation: download, export, fuse and quantise a checkpoint into a servable artefact.

Offline work that the export image runs once per recipe (`reranker-server prepare`); the serving
runtime reads its result only through `reranker_server.artefact`. The one way back in is local use:
`serve` without `--artefact` prepares on the spot.
"""
