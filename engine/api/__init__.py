"""The HTTP API of the engine (`rulesctl serve`): the deployment guide's endpoints as thin,
typed wrappers over the SQL API, with Supabase-style JWT auth that reaches row level security.

Modules: auth.py (token -> Caller), pool.py (connections: dead ones replaced at once, an
outage a 503 at once), calls.py (one transaction per call as the caller),
errors.py (SQLSTATE -> HTTP), routes.py (the endpoints), events.py (server-sent events from
PostgreSQL notifications), models.py (OpenAPI bodies), app.py (the ASGI app), server.py (uvicorn).
"""

from engine.api.app import create_app
from engine.api.server import build_server, serve

__all__ = ["create_app", "build_server", "serve"]
