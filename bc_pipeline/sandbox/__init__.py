"""Local HTTPS sandbox standing in for Microsoft Entra ID, Business Central OData V4 and iPaaS.com.

Start it with ``bc_pipeline.sandbox.launcher.start_sandbox(SandboxConfig(...))`` (a subprocess) or
``python -m bc_pipeline.sandbox serve`` (foreground). Nothing heavy is imported here, so importing the
package is cheap.
"""
