"""The stack's ceiling for bench/load.py: a bare Klein route that only hops through one actor.

    python bench/ceiling_server.py PORT

POST /hop/<sender> sends the request body to one pykka actor per sender, which answers at once
through callFromThread; no dialogue work, no store. This is the cost of HTTP + one actor hop.
"""

import json
import sys

import pykka
from klein import Klein
from twisted.internet import defer, reactor
from twisted.web.server import Site


class EchoActor(pykka.ThreadingActor):
    use_daemon_thread = True

    def on_receive(self, message):
        payload, deferred = message
        reactor.callFromThread(deferred.callback, [{"recipient_id": payload, "text": "ok"}])


class Ceiling:
    app = Klein()

    def __init__(self):
        self.actors = {}

    @app.route("/hop/<sender>", methods=["POST"])
    def hop(self, request, sender):
        request.content.read()
        actor = self.actors.get(sender)
        if actor is None:
            actor = self.actors[sender] = EchoActor.start()
        deferred = defer.Deferred()
        actor.tell((sender, deferred))

        def write(result):
            body = json.dumps(result).encode()
            request.setHeader(b"Content-Type", b"application/json")
            request.setHeader(b"Content-Length", str(len(body)).encode())
            return body
        return deferred.addCallback(write)

    @app.route("/", methods=["GET"])
    def health(self, request):
        return b"ok"


if __name__ == "__main__":
    port = int(sys.argv[1])
    reactor.listenTCP(port, Site(Ceiling().app.resource()), interface="127.0.0.1")
    reactor.run()
