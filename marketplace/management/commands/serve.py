"""`manage.py serve`: the embedded marketplace in one foreground process.

daphne serves HTTP (API, admin, static, media) and the WebSocket; the Huey consumer runs as
threads of the same process. Keeping them in one process is what lets the embedded in-memory
channel layer carry events from tasks (deadlines, refunds) to sockets; production runs them as
separate processes on Redis instead (docs/operations.md). Ctrl-C stops both.
"""

import logging
import sys

from daphne.access import AccessLogGenerator
from daphne.endpoints import build_endpoint_description_strings
from daphne.server import Server
from django.conf import settings
from django.core.management.base import BaseCommand
from huey.contrib.djhuey import HUEY

from project.asgi import application
from realtime import push

logger = logging.getLogger("marketplace.serve")


class Command(BaseCommand):
    help = "Run daphne (HTTP + WebSocket) and the Huey consumer together, in the foreground."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--no-worker", action="store_true", help="Serve without the consumer.")

    def handle(self, *args, host: str, port: int, no_worker: bool, **options):
        consumer = None
        if not no_worker:
            worker_settings = settings.HUEY.get("consumer", {})
            consumer = HUEY.create_consumer(
                workers=worker_settings.get("workers", 2),
                worker_type="thread",
                periodic=True,
                check_worker_health=False,
            )
            consumer.start()
        base = f"http://{host}:{port}"
        self.stdout.write(
            "\nMarketplace is running:\n"
            f"  API docs   {base}/api/docs\n"
            f"  Admin      {base}/admin/\n"
            f"  WebSocket  ws://{host}:{port}/ws/?token=<token>\n"
            f"  Worker     {'in this process' if consumer else 'off'}\n"
            "Press Ctrl-C to stop.\n"
        )
        server = Server(
            application=application,
            endpoints=build_endpoint_description_strings(host=host, port=port),
            signal_handlers=True,
            action_logger=AccessLogGenerator(sys.stdout),
            ready_callable=push.bind_server_loop,
        )
        try:
            server.run()
        finally:
            if consumer is not None:
                self.stdout.write("Stopping the worker...")
                consumer.stop(graceful=True)
            self.stdout.write("Stopped.")
