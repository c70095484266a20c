"""wsgid's Python side for ASGI 3.0 apps (FastAPI, Starlette, Django's asgi.py, ...).

Standard library only (asyncio). Started by src/gateways/python/bridge-process.ts as
`python asgi_bridge.py`; it talks to the gateway over the same two pipes and frame format as the
WSGI bridge (fd 3 in, fd 4 out; src/gateways/python/pipe.ts), and shares its code: the frame
writer, the app loader and the parent watch come from wsgid_bridge_common.py. The ASGI payloads are
described in src/gateways/asgi/protocol.ts.

Unlike the WSGI bridge, every request runs at once: each scope is a task on one event loop, so a
request waiting on I/O never holds up the others. The gateway sends requests as they come; how many
run at once is the worker's credit (--worker-connections).
"""

import asyncio
import collections
import http
import json
import os
import re
import struct
import sys
import traceback

import wsgid_bridge_common as common
from wsgid_bridge_common import (
    DONE_CANCELLED,
    DONE_ERROR,
    DONE_OK,
    HEAD_LENGTH,
    IN_FD,
    LOG_ERROR,
    LOG_INFO,
    MAX_DATA,
    T_ACK,
    T_BODY,
    T_BODY_END,
    T_CANCEL,
    T_DATA,
    T_DONE,
    T_HEAD,
    T_INIT,
    T_LOAD_FAILED,
    T_LOG,
    T_QUIT,
    T_READY,
    T_SCOPE,
    T_WS_ACCEPT,
    T_WS_CLOSE,
    T_WS_FRAME,
    U32,
)

common.BRIDGE_FILES.add(os.path.abspath(__file__))
U16 = struct.Struct(">H")  # WebSocket close codes

# Payload of a cancel frame for an http request that timed out (protocol.ts): its task is cancelled.
CANCEL_TIMED_OUT = b"T"
OP_TEXT, OP_BINARY, OP_CLOSE = 0x1, 0x2, 0x8

TOKEN_RE = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")
BAD_VALUE_RE = re.compile(rb"[\r\n\0]")
ASGI = {"version": "3.0", "spec_version": "2.3"}
FILE_CHUNK = 64 * 1024
# On quit, how long running tasks get before they are cancelled (the gateway waits 10 s in all).
DRAIN_S = 5
# How often the request pipe is checked for an app that closed it (os.close(3)) outside a request.
PIPE_CHECK_S = 1.0


class ClientDisconnected(OSError):
    """Raised by a WebSocket send() once the client is gone (ASGI: an OSError subclass)."""


def phrase(status):
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


def encode_headers(headers, what):
    out = []
    for item in headers or ():
        try:
            name, value = item
        except (TypeError, ValueError):
            raise TypeError("%s: a header must be a [name, value] pair of bytes, got %r" % (what, item))
        if not isinstance(name, (bytes, bytearray)) or not isinstance(value, (bytes, bytearray)):
            raise TypeError("%s: header names and values must be bytes, got %r" % (what, item))
        if not TOKEN_RE.match(name):
            raise ValueError("%s: invalid header name %r" % (what, name))
        if BAD_VALUE_RE.search(value):
            raise ValueError("%s: invalid header value for %r: %r" % (what, name, value))
        out.append((bytes(name), bytes(value)))
    return out


class Cycle:
    """One scope's state: what the app may receive, and what it sent."""

    def __init__(self, bridge, rid, scope, body_file):
        self.bridge = bridge
        self.rid = rid
        self.scope = scope
        self.chunks = collections.deque()
        self.body_complete = False
        self.body_file = body_file
        self.body_delivered = False
        self.task = None  # the asyncio task running the app (cancelled when the request times out)
        self.disconnected = False
        self.disconnect_code = 1006
        self.disconnect_reason = ""
        self.changed = asyncio.Event()
        self.unacked = 0
        self.done = False  # the Z frame went out
        # http
        self.start = None
        self.head_sent = False
        self.response_complete = False
        # websocket
        self.connected = False  # websocket.connect delivered
        self.accepted = False
        self.closed = False  # websocket.close sent by the app

    def wake(self):
        self.changed.set()

    async def wait(self):
        await self.changed.wait()
        self.changed.clear()

    # -- frames from the gateway --

    def on_body(self, data):
        self.chunks.append(data)
        self.wake()

    def on_body_end(self):
        self.body_complete = True
        self.wake()

    def on_ack(self, n):
        self.unacked -= n
        self.wake()

    def on_cancel(self, payload):
        self.disconnected = True
        if len(payload) >= 2:
            self.disconnect_code = U16.unpack_from(payload)[0]
        self.wake()
        if payload == CANCEL_TIMED_OUT and self.task is not None and self.scope["type"] == "http":
            # The server answered 504 (--timeout): a task that does not listen for http.disconnect
            # (awaiting something that never comes) would run on forever.
            self.task.cancel()

    def on_ws_frame(self, payload):
        self.chunks.append(payload)
        self.wake()

    # -- writing, with the gateway's window --

    async def credit(self, size):
        while self.unacked > 0 and self.unacked + size > self.bridge.window and not self.disconnected:
            await self.wait()

    def finish(self, outcome, detail=""):
        if self.done:
            return
        self.done = True
        if outcome == DONE_CANCELLED and self.bridge.pipe_lost:
            # Cut off because the pipe is gone: the gateway answers 502 once this process exits.
            self.bridge.cycles.pop(self.rid, None)
            return
        self.bridge.pipe.send(T_DONE, self.rid, bytes([outcome]) + detail.encode("utf-8", "replace"))
        self.bridge.cycles.pop(self.rid, None)
        self.bridge.schedule_flush()

    # -- http --

    async def http_receive(self):
        while True:
            if self.disconnected:
                return {"type": "http.disconnect"}
            if not self.body_delivered:
                if self.body_file is not None:
                    data = self.body_file.read(FILE_CHUNK)
                    more = len(data) == FILE_CHUNK
                    if not more:
                        self.body_file.close()
                        self.body_delivered = True
                    return {"type": "http.request", "body": data, "more_body": more}
                if self.chunks or self.body_complete:
                    data = b"".join(self.chunks)
                    self.chunks.clear()
                    if self.body_complete:
                        self.body_delivered = True
                    return {"type": "http.request", "body": data, "more_body": not self.body_complete}
            elif self.response_complete:
                return {"type": "http.disconnect"}
            await self.wait()

    async def http_send(self, message):
        kind = message["type"]
        if kind == "http.response.start":
            if self.start is not None:
                raise RuntimeError("http.response.start sent twice")
            status = message["status"]
            if type(status) is not int or not 100 <= status <= 999:
                raise ValueError("http.response.start: invalid status %r" % (status,))
            self.start = (status, encode_headers(message.get("headers"), "http.response.start"))
            return
        if kind != "http.response.body":
            raise RuntimeError("unexpected ASGI message %r in an http scope" % kind)
        if self.start is None:
            raise RuntimeError("http.response.body sent before http.response.start")
        if self.response_complete:
            raise RuntimeError("http.response.body sent after the response was complete")
        body = message.get("body", b"")
        if not isinstance(body, (bytes, bytearray, memoryview)):
            raise TypeError("http.response.body: body must be bytes, not %s" % type(body).__name__)
        more = bool(message.get("more_body", False))
        if self.disconnected:
            # As uvicorn: the client is gone, the rest of the response goes nowhere.
            if not more:
                self.response_complete = True
                self.wake()
            return
        if not self.head_sent:
            self.send_head(None if more else len(body))
        view = memoryview(body)
        for offset in range(0, len(view), MAX_DATA):
            piece = view[offset : offset + MAX_DATA]
            await self.credit(len(piece))
            if self.disconnected:
                break
            self.unacked += len(piece)
            self.bridge.pipe.send(T_DATA, self.rid, bytes(piece))
            self.bridge.schedule_flush()
        if more and not self.disconnected:
            # On its way now, as uvicorn's transport.write(): the app may block the loop before
            # its next chunk (Django iterates a sync StreamingHttpResponse on the loop's thread).
            self.bridge.flush()
        if not more:
            self.response_complete = True
            self.wake()
            self.finish(DONE_CANCELLED if self.disconnected else DONE_OK)

    def send_head(self, length):
        status, headers = self.start
        # The H frame of the WSGI bridge: f64 body length, then `status ("\0" name "\0" value)*`
        # (encode_headers refused NUL, CR and LF in names and values, so the split is exact).
        parts = [HEAD_LENGTH.pack(float(-1 if length is None else length)) + ("%d %s" % (status, phrase(status))).strip().encode("latin-1")]
        for name, value in headers:
            parts += [name, value]
        self.head_sent = True
        self.bridge.pipe.send(T_HEAD, self.rid, b"\0".join(parts))
        self.bridge.schedule_flush()

    async def run_http(self):
        app = self.bridge.app
        try:
            await app(self.scope, self.http_receive, self.http_send)
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError) and self.bridge.quitting:
                self.finish(DONE_CANCELLED)
                return
            text = traceback.format_exc()
            if self.done:
                self.bridge.log(LOG_ERROR, "the ASGI app raised after its response was complete:\n" + text, self.rid)
            else:
                self.finish(DONE_CANCELLED if self.disconnected else DONE_ERROR, text)
            if not isinstance(exc, Exception):
                raise
            return
        finally:
            if self.body_file is not None and not self.body_file.closed:
                self.body_file.close()
        if not self.done:
            if self.disconnected:
                self.finish(DONE_CANCELLED)
            elif self.start is None:
                self.finish(DONE_ERROR, "the ASGI app returned without sending http.response.start")
            else:
                self.finish(DONE_ERROR, "the ASGI app returned without completing its response (more_body never false)")

    # -- websocket --

    async def ws_receive(self):
        while True:
            if not self.connected:
                self.connected = True
                return {"type": "websocket.connect"}
            if self.chunks:
                payload = self.chunks.popleft()
                op = payload[0]
                if op == OP_TEXT:
                    return {"type": "websocket.receive", "text": payload[1:].decode("utf-8")}
                if op == OP_BINARY:
                    return {"type": "websocket.receive", "bytes": bytes(payload[1:])}
                if op == OP_CLOSE:
                    self.disconnected = True
                    if len(payload) >= 3:
                        self.disconnect_code = U16.unpack_from(payload, 1)[0]
                        self.disconnect_reason = payload[3:].decode("utf-8", "replace")
                    else:
                        self.disconnect_code = 1005
                    continue
            if self.disconnected:
                return {"type": "websocket.disconnect", "code": self.disconnect_code, "reason": self.disconnect_reason}
            await self.wait()

    async def ws_send(self, message):
        kind = message["type"]
        pipe = self.bridge.pipe
        if self.disconnected and kind != "websocket.close":
            raise ClientDisconnected("the WebSocket client is gone")
        if kind == "websocket.accept":
            if self.accepted or self.closed:
                raise RuntimeError("websocket.accept sent twice, or after websocket.close")
            headers = encode_headers(message.get("headers"), "websocket.accept")
            accept = {
                "subprotocol": message.get("subprotocol"),
                "headers": [[n.decode("latin-1"), v.decode("latin-1")] for n, v in headers],
            }
            self.accepted = True
            pipe.send(T_WS_ACCEPT, self.rid, json.dumps(accept).encode("utf-8"))
            self.bridge.schedule_flush()
            return
        if kind == "websocket.send":
            if not self.accepted:
                raise RuntimeError("websocket.send before websocket.accept")
            if self.closed:
                raise RuntimeError("websocket.send after websocket.close")
            text = message.get("text")
            if text is not None:
                payload = bytes([OP_TEXT]) + text.encode("utf-8")
            else:
                data = message.get("bytes")
                if data is None:
                    raise ValueError("websocket.send needs 'text' or 'bytes'")
                payload = bytes([OP_BINARY]) + bytes(data)
            await self.credit(len(payload))
            if self.disconnected:
                raise ClientDisconnected("the WebSocket client is gone")
            self.unacked += len(payload)
            pipe.send(T_WS_FRAME, self.rid, payload)
            self.bridge.schedule_flush()
            return
        if kind == "websocket.close":
            if self.closed:
                return
            self.closed = True
            code = int(message.get("code") or 1000)
            reason = message.get("reason") or ""
            if not self.accepted:
                # Refused before the handshake: the client gets 403 (as uvicorn).
                self.start = (403, [(b"content-length", b"0")])
                self.send_head(0)
                self.finish(DONE_OK)
                return
            if not self.disconnected:
                pipe.send(T_WS_CLOSE, self.rid, U16.pack(code) + reason.encode("utf-8")[:123])
                self.bridge.schedule_flush()
            return
        raise RuntimeError("unexpected ASGI message %r in a websocket scope" % kind)

    async def run_websocket(self):
        app = self.bridge.app
        try:
            await app(self.scope, self.ws_receive, self.ws_send)
        except BaseException as exc:
            if not self.done:
                if self.accepted and not self.closed and not self.disconnected:
                    self.bridge.pipe.send(T_WS_CLOSE, self.rid, U16.pack(1011))
                    self.closed = True
                self.finish(DONE_CANCELLED if self.disconnected else DONE_ERROR, traceback.format_exc())
            if not isinstance(exc, Exception):
                raise
            return
        if not self.done:
            if not self.accepted and not self.closed:
                self.finish(DONE_ERROR, "the ASGI app returned without accepting or closing the WebSocket")
                return
            if self.accepted and not self.closed and not self.disconnected:
                self.bridge.pipe.send(T_WS_CLOSE, self.rid, U16.pack(1000))
            self.finish(DONE_OK)


class Lifespan:
    """The lifespan scope (uvicorn's lifespan=auto): optional for the app."""

    def __init__(self, bridge):
        self.bridge = bridge
        self.queue = asyncio.Queue()
        self.received = False
        self.started = asyncio.Event()
        self.stopped = asyncio.Event()
        self.supported = True
        self.failure = None
        self.task = None

    async def receive(self):
        self.received = True
        return await self.queue.get()

    async def send(self, message):
        kind = message["type"]
        if kind == "lifespan.startup.complete":
            self.started.set()
        elif kind == "lifespan.startup.failed":
            self.failure = message.get("message") or "lifespan.startup.failed"
            self.started.set()
        elif kind == "lifespan.shutdown.complete":
            self.stopped.set()
        elif kind == "lifespan.shutdown.failed":
            self.bridge.log(LOG_ERROR, "lifespan shutdown failed: %s" % (message.get("message") or ""))
            self.stopped.set()
        else:
            raise RuntimeError("unexpected ASGI message %r in the lifespan scope" % kind)

    async def main(self):
        scope = {"type": "lifespan", "asgi": dict(ASGI), "state": self.bridge.state}
        try:
            await self.bridge.app(scope, self.receive, self.send)
        except BaseException:
            if not self.received:
                # Raised at once, without asking for a message: the app has no lifespan support.
                self.supported = False
                self.bridge.log(LOG_INFO, "ASGI 'lifespan' protocol appears unsupported by the app")
            elif not self.started.is_set():
                self.failure = traceback.format_exc()
            elif not self.stopped.is_set():
                self.bridge.log(LOG_ERROR, "the ASGI app's lifespan failed:\n" + traceback.format_exc())
        finally:
            self.started.set()
            self.stopped.set()

    async def startup(self):
        self.task = asyncio.ensure_future(self.main())
        await self.queue.put({"type": "lifespan.startup"})
        await self.started.wait()
        return self.failure

    async def shutdown(self):
        if not self.supported or self.task is None or self.task.done():
            return
        await self.queue.put({"type": "lifespan.shutdown"})
        await self.stopped.wait()


class Bridge:
    def __init__(self):
        self.pipe = common.Pipe()
        self.app = None
        self.window = 1024 * 1024
        self.cycles = {}
        self.tasks = set()
        self.state = {}
        self.quitting = False
        self.quit = None
        self.flush_scheduled = False
        self.loop = None
        # (st_dev, st_ino) of fd 3 when serving began: an app that closes fd 3 (and maybe opens
        # something else that gets the number) leaves the event loop deaf to the gateway, with no
        # error anywhere; check_pipe() notices and the bridge exits.
        self.pipe_identity = None
        self.pipe_lost = False

    def log(self, level, text, rid=0):
        self.pipe.send(T_LOG, rid, bytes([level]) + text.encode("utf-8", "replace"))
        self.schedule_flush()

    def schedule_flush(self):
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self.loop.call_soon(self.flush)

    def flush(self):
        self.flush_scheduled = False
        try:
            self.pipe.flush()
        except common.PipeGone:
            self.stop()

    def stop(self):
        self.quitting = True
        if not self.quit.done():
            self.quit.set_result(None)

    def remember_pipe(self):
        st = os.fstat(IN_FD)
        self.pipe_identity = (st.st_dev, st.st_ino)

    def check_pipe(self):
        """Exit (the gateway answers 502 to what is in flight and starts a new process) when fd 3
        is no longer the gateway's pipe."""
        if self.pipe_lost or self.pipe_identity is None:
            return
        try:
            st = os.fstat(IN_FD)
            if (st.st_dev, st.st_ino) == self.pipe_identity:
                return
        except OSError:
            pass
        self.pipe_lost = True
        self.log(LOG_ERROR, "the ASGI app closed the bridge's request pipe (fd 3): this Python process exits and a new one serves the next requests")
        self.stop()

    def watch_pipe(self):
        self.check_pipe()
        if not self.pipe_lost and not self.quitting:
            self.loop.call_later(PIPE_CHECK_S, self.watch_pipe)

    def on_readable(self):
        self.check_pipe()
        if self.pipe_lost:
            return  # fd 3 may be another file by now: never read it
        try:
            while True:
                frame = self.pipe.frame(block=False)
                if frame is None:
                    return
                self.dispatch(*frame)
        except common.PipeGone:
            self.loop.remove_reader(IN_FD)
            self.stop()

    def dispatch(self, kind, rid, payload):
        if kind == T_QUIT:
            self.stop()
            return
        if kind == T_SCOPE:
            if rid != 0 and rid not in self.cycles and not self.quitting:
                self.begin(rid, payload)
            return
        cycle = self.cycles.get(rid)
        if cycle is None:
            return  # a late frame of a finished request
        if kind == T_BODY:
            cycle.on_body(payload)
        elif kind == T_BODY_END:
            cycle.on_body_end()
        elif kind == T_ACK:
            cycle.on_ack(U32.unpack(payload)[0])
        elif kind == T_CANCEL:
            cycle.on_cancel(payload)
        elif kind == T_WS_FRAME:
            cycle.on_ws_frame(payload)

    def begin(self, rid, payload):
        info = json.loads(payload.decode("utf-8"))
        kind = info["type"]
        scope = {
            "type": kind,
            "asgi": dict(ASGI),
            "http_version": info["http_version"],
            "scheme": info["scheme"],
            "path": info["path"],
            "raw_path": info["raw_path"].encode("latin-1"),
            "query_string": info["query_string"].encode("latin-1"),
            "root_path": info["root_path"],
            "headers": [(n.encode("latin-1"), v.encode("latin-1")) for n, v in info["headers"]],
            "client": tuple(info["client"]) if info.get("client") else None,
            "server": tuple(info["server"]) if info.get("server") else None,
            "state": dict(self.state),
        }
        if kind == "http":
            scope["method"] = info["method"]
        else:
            scope["subprotocols"] = info.get("subprotocols") or []
            scope["extensions"] = {}
        body_file = None
        if info.get("body_file"):
            try:
                body_file = open(os.fsdecode(info["body_file"].encode("latin-1")), "rb")
            except OSError:
                self.pipe.send(T_DONE, rid, bytes([DONE_ERROR]) + traceback.format_exc().encode("utf-8", "replace"))
                self.schedule_flush()
                return
        cycle = self.cycles[rid] = Cycle(self, rid, scope, body_file)
        task = cycle.task = self.loop.create_task(cycle.run_http() if kind == "http" else cycle.run_websocket())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def drain(self):
        """After a quit: let what runs finish (the worker drained its requests first), cancel what
        still runs after DRAIN_S (background work, a hung task), so that the lifespan shutdown
        runs within the gateway's grace period."""
        if self.tasks and not self.pipe_lost:  # without the pipe they get no body, acks or cancels
            await asyncio.wait(set(self.tasks), timeout=DRAIN_S)
        left = set(self.tasks)
        for task in left:
            task.cancel()
        if left:
            await asyncio.wait(left, timeout=1)


def load(config):
    django = config.get("django")
    if django is not None and config.get("entry") is None:
        if django.get("settingsModule"):
            os.environ.setdefault("DJANGO_SETTINGS_MODULE", django["settingsModule"])
        from django.core.asgi import get_asgi_application

        app = get_asgi_application()
        return app, "Django ASGI (DJANGO_SETTINGS_MODULE=%s)" % os.environ.get("DJANGO_SETTINGS_MODULE")
    config = dict(config)
    config["django"] = None if django is None else dict(django)
    if config["django"] is not None and config["django"].get("settingsModule"):
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", config["django"]["settingsModule"])
    app, label = common.load_app(config)
    if isinstance(app, type):
        raise TypeError("%s is a class, not an ASGI 3 application instance" % label)
    return app, label


async def serve(bridge, config):
    loop = bridge.loop = asyncio.get_running_loop()
    bridge.quit = loop.create_future()
    try:
        bridge.app, label = load(config)
    except BaseException as exc:
        # As the WSGI bridge: the traceback `python -c 'import app'` would print (no bridge frames).
        try:
            text = common.app_traceback(exc)
        except Exception:
            text = traceback.format_exc()
        bridge.pipe.send(T_LOAD_FAILED, 0, text.encode("utf-8", "replace"))
        bridge.pipe.flush()
        return 4
    bridge.remember_pipe()
    loop.add_reader(IN_FD, bridge.on_readable)
    lifespan = Lifespan(bridge)
    failure = await lifespan.startup()
    if failure is not None:
        bridge.pipe.send(T_LOAD_FAILED, 0, ("the ASGI app's lifespan startup failed: %s" % failure).encode("utf-8", "replace"))
        bridge.pipe.flush()
        return 4
    bridge.pipe.send(T_READY, 0, label.encode("utf-8", "replace"))
    bridge.flush()
    bridge.on_readable()  # frames that arrived with the init frame's read
    bridge.watch_pipe()
    await bridge.quit
    await bridge.drain()
    await lifespan.shutdown()
    bridge.flush()
    return 1 if bridge.pipe_lost else 0


def main():
    common.leave_own_folder(__file__)
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    common.watch_parent()
    bridge = Bridge()
    try:
        kind, _, payload = bridge.pipe.frame(block=True)
    except common.PipeGone:
        sys.exit(0)
    if kind != T_INIT:
        raise SystemExit("wsgid ASGI bridge: expected an init frame")
    config = json.loads(payload.decode("utf-8"))
    bridge.window = int(config.get("window") or bridge.window)
    common.apply_init(config)
    code = asyncio.run(serve(bridge, config))
    try:
        bridge.pipe.flush()
    except common.PipeGone:
        pass
    sys.exit(code)


if __name__ == "__main__":
    main()
