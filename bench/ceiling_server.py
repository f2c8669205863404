"""The stack's ceiling for bench/load.py: a bare Klein route that only hops through one actor.

    python bench/ceiling_server.py PORT [CPUS]

POST /hop/<sender> sends the request body to one actor per sender, which answers at once; no
dialogue work, no store. Everything else is the server's: the actors run as conversation actors
do (pykka actors on coreactors' worker pool) and answer through the same reply bridge; the site
and the Klein routing are the server's (``make_site`` and ``klein_app``, with the same fast
paths, no access log as with ``--quiet``); the interpreter is tuned as the server tunes it. So
this is the cost of HTTP + one actor hop in this stack. CPUS pins it as the server's ``--cpus``
does.
"""

import json
import sys

from twisted.internet import defer, reactor

from coreactors.actors.reply import Reply, ReplyBridge
from coreactors.actors.worker_pool import WorkerPool
from coreactors.fastpaths.pykka_pool import PooledActor
from coreactors.http.app import make_site
from coreactors.http.routing import klein_app
from coreactors.process import pin_cpus, tune_interpreter


class EchoActor(PooledActor):
    def on_receive(self, message):
        sender, reply = message
        reply.succeed([{"recipient_id": sender, "text": "ok"}])


class Ceiling:
    app = klein_app()

    def __init__(self):
        self.actors = {}
        self.pool = WorkerPool().start()
        self.replies = ReplyBridge(reactor.callFromThread)

    @app.route("/hop/<sender>", methods=["POST"])
    def hop(self, request, sender):
        request.content.read()
        actor = self.actors.get(sender)
        if actor is None:
            actor = self.actors[sender] = EchoActor.start(self.pool)
        deferred = defer.Deferred()
        actor.tell((sender, Reply(deferred, self.replies)))

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
    if len(sys.argv) > 2:
        pin_cpus(sys.argv[2])
    site = make_site(Ceiling().app.resource(), quiet=True)
    tune_interpreter()
    reactor.listenTCP(port, site, interface="127.0.0.1")
    reactor.run()
