"""What gunicorn serves (``backend.wsgi:app``): the app, with its escrow chain connected
before the first request, so that an artist's first acceptance (it names the chain id)
does not wait for the connection, about 0.4 s, in whichever web worker it lands on; then
what the worker built is frozen out of the collector's way."""

from __future__ import annotations

import logging

from flask import Flask

from backend import create_app
from backend.services.chain_access import escrow_chain
from backend.startup_heap import freeze_startup_heap

log = logging.getLogger(__name__)


def with_chain_connected(app: Flask) -> Flask:
    with app.app_context():
        try:
            escrow_chain().chain_id  # noqa: B018 (read once, then cached)
        except Exception as error:  # the first request that needs the chain connects on its own
            log.warning("the escrow chain is not connected yet: %s", error)
    return app


app = with_chain_connected(create_app())
freeze_startup_heap()
