"""Mapping collections (YAML, as iPaaS.com names them) and the engine that applies them to DataFrames."""
