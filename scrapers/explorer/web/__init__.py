"""The web explorer (``tracklists-web``): the catalogue in a browser, and as JSON under ``/api/``.

``app.create_app`` builds the FastAPI app; ``scripts/web.py`` serves it with uvicorn
(``scrapers.serving``) on 127.0.0.1:8087. Pages are rendered on the server from the query module
(``scrapers.db.explore``) with a little vanilla JavaScript; the track graph is drawn by the
vendored Cytoscape.js (``static/vendor/``, checked against npm's published hash).
"""
