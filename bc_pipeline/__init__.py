"""bc_pipeline: keeps Microsoft Dynamics 365 Business Central and iPaaS.com in sync, with Dagster."""

__version__ = "0.1.0"
