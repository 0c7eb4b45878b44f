"""The HTTP routes, one APIRouter per group; `app.create_app` includes them in this order."""
