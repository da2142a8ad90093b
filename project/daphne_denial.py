"""Teaches daphne 4.2 the ASGI WebSocket denial response ("websocket.http.response").

Without it an application can only accept a handshake or refuse it, which daphne answers with
403, or raise, which it answers with 500; an unknown socket path (realtime/routing.py) should be
a 404 like any unknown URL. uvicorn implements the extension itself. Only the status line is
sent: daphne's handshake layer (autobahn) writes its own short body.
"""

from http import HTTPStatus

DENIAL = "websocket.http.response"


def install() -> None:
    try:
        from autobahn.websocket.types import ConnectionDeny
        from daphne.server import Server
        from daphne.ws_protocol import WebSocketProtocol
    except ImportError:  # another server
        return
    if getattr(WebSocketProtocol, "_denial_installed", False):
        return
    original_reply = WebSocketProtocol.handle_reply
    original_create = Server.create_application

    def handle_reply(self, message):
        kind = message.get("type")
        if kind == "websocket.http.response.start" and self.state == self.STATE_CONNECTING:
            status = int(message.get("status", 403))
            try:
                reason = HTTPStatus(status).phrase
            except ValueError:
                reason = "Refused"
            self.handshake_deferred.errback(ConnectionDeny(code=status, reason=reason))
            del self.handshake_deferred
            self.server.protocol_disconnected(self)
            return None
        if kind == "websocket.http.response.body":
            return None
        return original_reply(self, message)

    def create_application(self, protocol, scope):
        if scope.get("type") == "websocket":
            scope.setdefault("extensions", {})[DENIAL] = {}
        return original_create(self, protocol, scope)

    WebSocketProtocol.handle_reply = handle_reply
    Server.create_application = create_application
    WebSocketProtocol._denial_installed = True
