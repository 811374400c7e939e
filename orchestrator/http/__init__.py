"""The FLP HTTP service (``flp serve``): one ASGI app, routers per area (docs/http.md)."""
