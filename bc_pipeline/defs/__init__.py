"""Dagster definitions built from the catalog: resources, assets, checks, jobs."""
