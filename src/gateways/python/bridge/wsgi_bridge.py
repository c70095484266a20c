"""wsgid's Python side of the WSGI gateway: runs ONE WSGI application (PEP 3333).

Standard library only. Started by src/gateways/python/bridge-process.ts as `python wsgi_bridge.py`;
it talks to the gateway over two pipes, fd 3 (gateway -> bridge) and fd 4 (bridge -> gateway), so
the app's own stdout and stderr stay free (the gateway forwards them to wsgid's log). The framing is
described in src/gateways/python/pipe.ts; the pipe codec, the loader and the parent watch are
wsgid_bridge_common.py's. One request at a time (or `threads` at a time, on a thread pool:
gunicorn's gthread), but the gateway pipelines: it may send the environ (and small body) of later
requests while others run; they wait here, in order, in `Bridge.pending`, and are started in that
order without waiting for the gateway.
"""

import collections
import json
import os
import re
import signal
import sys
import threading

import wsgid_bridge_common as common
from wsgid_bridge_common import (
    DONE_CANCELLED,
    DONE_ERROR,
    DONE_OK,
    HEAD_LENGTH,
    LOG_WARN,
    MAX_DATA,
    T_ACK,
    T_BODY,
    T_BODY_END,
    T_CANCEL,
    T_DATA,
    T_DONE,
    T_ENVIRON,
    T_HEAD,
    T_INIT,
    T_LOAD_FAILED,
    T_LOG,
    T_QUIT,
    T_READY,
    T_REQUEST,
    T_WHOLE,
    U32,
    Pipe,
    PipeGone,
    format_exc,
)

common.BRIDGE_FILES.add(os.path.abspath(__file__))

STATUS_RE = re.compile(r"[1-9][0-9][0-9] [^\r\n\0]*\Z")
TOKEN_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")
BAD_VALUE_RE = re.compile(r"[\r\n\0]")
# start_response's fast path: the names and values joined with NUL, checked with one match (see
# Request.start_response); anything it refuses goes through the slow checks for a precise error.
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
HEADERS_RE = re.compile(r"%s\0[^\r\n\0]*(?:\0%s\0[^\r\n\0]*)*\Z" % (_TOKEN, _TOKEN))
PAIR_TYPES = frozenset((tuple, list))
BAD_LENGTH_RE = re.compile(r"(?:\A|\0)content-length\0(?!\s*\d+\s*(?:\0|\Z))")


class ClientDisconnected(OSError):
    """Raised into the app (by write(), or between chunks) when the client went away."""


class ErrorStream:
    """wsgi.errors: text written here becomes lines in wsgid's log."""

    def __init__(self, bridge):
        self.bridge = bridge
        self.parts = []

    def write(self, text):
        if not isinstance(text, str):
            raise TypeError("wsgi.errors.write() takes a str, not %s" % type(text).__name__)
        self.parts.append(text)
        if "\n" in text:
            self.flush()

    def writelines(self, seq):
        for text in seq:
            self.write(text)

    def flush(self):
        text = "".join(self.parts)
        self.parts = []
        if text.strip():
            self.bridge.log(LOG_WARN, text.rstrip("\n"))


class PipeInput:
    """wsgi.input for a body that arrives in B frames (read lazily, as the app asks for it)."""

    def __init__(self, bridge):
        self.bridge = bridge
        self.buf = bytearray()
        self.complete = False

    def feed(self, data):
        self.buf += data

    def _want(self, size):
        if not self.complete and (size < 0 or len(self.buf) < size):
            self.bridge.wait_until(lambda: self.complete or (0 <= size <= len(self.buf)))

    def _take(self, size):
        cond = self.bridge.cond
        if cond is None:
            return self._take_now(size)
        with cond:  # the reader thread appends meanwhile
            return self._take_now(size)

    def _take_now(self, size):
        if size < 0 or size >= len(self.buf):
            data = bytes(self.buf)
            self.buf.clear()
        else:
            data = bytes(self.buf[:size])
            del self.buf[:size]
        return data

    def read(self, size=-1):
        if size is None:
            size = -1
        self._want(size)
        return self._take(size)

    def readline(self, size=-1):
        if size is None:
            size = -1
        while True:
            newline = self.buf.find(b"\n")
            if newline >= 0 and (size < 0 or newline < size):
                return self._take(newline + 1)
            if self.complete or (0 <= size <= len(self.buf)):
                return self._take(size)
            have = len(self.buf)
            self.bridge.wait_until(lambda: self.complete or len(self.buf) > have)

    def readlines(self, hint=-1):
        lines = []
        total = 0
        while True:
            line = self.readline()
            if not line:
                return lines
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                return lines

    def __iter__(self):
        return self

    def __next__(self):
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def close(self):
        pass


class FileWrapper:
    """wsgi.file_wrapper: iterate a file in blocks; close() closes it."""

    def __init__(self, filelike, blksize=8192):
        self.filelike = filelike
        self.blksize = max(int(blksize), 64 * 1024)
        if hasattr(filelike, "close"):
            self.close = filelike.close

    def __iter__(self):
        return self

    def __next__(self):
        data = self.filelike.read(self.blksize)
        if data:
            return data
        raise StopIteration


class Request:
    """One request from the gateway: its environ frame, its body so far, a cancel flag, and the
    state of its response (start_response, write and the H/D frames are its methods)."""

    __slots__ = (
        "bridge", "rid", "environ", "input", "cancelled", "unacked",
        "head", "head_sent", "no_body", "method", "whole",
    )

    def __init__(self, bridge, rid, environ):
        self.bridge = bridge
        self.rid = rid
        self.environ = environ
        self.input = PipeInput(bridge)
        self.cancelled = False
        self.unacked = 0
        # The status and headers, encoded for the H frame: set by start_response.
        self.head = None
        self.head_sent = False
        self.no_body = False
        self.method = "GET"
        # A one-element list's body, held until the end: H, D and Z then go as one W frame.
        self.whole = None

    def start_response(self, status, headers, exc_info=None):
        if exc_info is not None:
            try:
                if self.head_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.head is not None:
            raise AssertionError("start_response() called a second time without exc_info")
        head = None
        try:
            # Fast path: one join, two regular expressions, one encode. A name or value holding a
            # NUL would add separators: the count catches it.
            if (
                type(status) is str
                and STATUS_RE.match(status)
                and isinstance(headers, (list, tuple))
                and PAIR_TYPES.issuperset(map(type, headers))
            ):
                if not headers:
                    head = status.encode("latin-1")
                else:
                    joined = "\0".join([name + "\0" + value for name, value in headers])
                    if (
                        HEADERS_RE.match(joined)
                        and joined.count("\0") == 2 * len(headers) - 1
                        and not BAD_LENGTH_RE.search(joined.lower())
                    ):
                        head = (status + "\0" + joined).encode("latin-1")
        except (TypeError, ValueError):
            head = None
        if head is None:
            head = self.checked_head(status, headers)
        self.head = head
        code = int(status[:3])
        self.no_body = self.method == "HEAD" or code in (204, 304) or code < 200
        return self.write

    @staticmethod
    def checked_head(status, headers):
        """The slow path of start_response: every check on its own, raising with a precise message."""
        if type(status) is not str:
            raise TypeError("status must be a str, not %s" % type(status).__name__)
        if not STATUS_RE.match(status):
            raise ValueError("invalid status %r (expected e.g. '200 OK')" % status)
        parts = [status]
        if not isinstance(headers, (list, tuple)):
            raise TypeError("response headers must be a list, not %s" % type(headers).__name__)
        for item in headers:
            if not isinstance(item, (tuple, list)) or len(item) != 2:
                raise TypeError("a response header must be a (name, value) tuple, got %r" % (item,))
            name, value = item
            if not isinstance(name, str) or not isinstance(value, str):
                raise TypeError("header name and value must be str, got %r" % (item,))
            if not TOKEN_RE.match(name):
                raise ValueError("invalid response header name %r" % name)
            if BAD_VALUE_RE.search(value):
                raise ValueError("invalid response header value for %s: %r" % (name, value))
            if name.lower() == "content-length" and not value.strip().isdigit():
                raise ValueError("invalid Content-Length %r" % value)
            parts.append(name)
            parts.append(value)
        return "\0".join(parts).encode("latin-1")

    def write(self, data):
        if self.head is None:
            raise AssertionError("write() called before start_response()")
        if not isinstance(data, bytes):
            raise TypeError("write() takes bytes, not %s" % type(data).__name__)
        if data:
            self.send_body(data, None)
            # On its way before the app produces more (it may block for seconds: SSE, progress).
            self.bridge.pipe.flush()

    def send_head(self, length):
        self.head_sent = True
        self.bridge.pipe.send(T_HEAD, self.rid, HEAD_LENGTH.pack(-1.0 if length is None else float(length)) + self.head)

    def send_body(self, data, known):
        if self.cancelled:
            raise ClientDisconnected("client disconnected")
        if not self.head_sent:
            self.send_head(known)
        if self.no_body:
            return
        bridge = self.bridge
        window = bridge.window
        view = memoryview(data)
        for offset in range(0, len(view), MAX_DATA):
            piece = view[offset : offset + MAX_DATA]
            size = len(piece)
            if self.unacked > 0 and self.unacked + size > window:
                bridge.wait_until(lambda: self.cancelled or self.unacked <= 0 or self.unacked + size <= window)
            if self.cancelled:
                raise ClientDisconnected("client disconnected")
            cond = bridge.cond
            if cond is None:
                self.unacked += size
            else:
                with cond:  # the reader thread subtracts acks
                    self.unacked += size
            bridge.pipe.send(T_DATA, self.rid, piece)


class Bridge:
    """Serves the requests the gateway sends. With one thread (the default) the main thread reads
    the frames and runs the app in between; with more, the main thread only reads frames and a
    pool of threads runs the app (gunicorn's gthread)."""

    def __init__(self):
        self.pipe = Pipe()
        self.app = None
        self.window = 1024 * 1024
        self.threads = 1
        self.errors = ErrorStream(self)
        self.quit = False
        # Requests received and not finished, by id; `pending` holds those not started, in order.
        self.requests = {}
        self.pending = collections.deque()
        # With threads: guards requests/pending and the requests' input, acks and cancel flags.
        self.cond = None
        self.gone = False
        self.running = 0
        self.set_threads(1)

    def set_threads(self, threads):
        self.threads = threads
        # The environ entries that are the same for every request.
        self.constants = {
            "wsgi.version": (1, 0),
            "wsgi.multithread": threads > 1,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
            "wsgi.input_terminated": True,
            "wsgi.file_wrapper": FileWrapper,
        }

    # -- frames -------------------------------------------------------------------------------

    def log(self, level, text):
        self.pipe.send(T_LOG, 0, bytes([level]) + text.encode("utf-8", "replace"))

    def dispatch(self, frame):
        kind, rid, payload = frame
        if kind == T_QUIT:
            self.quit = True
            return
        if kind == T_REQUEST:
            # A request and its whole body in one frame (maybe sent ahead while others run): it
            # waits its turn in `pending`.
            if rid != 0 and rid not in self.requests:
                (length,) = U32.unpack_from(payload, 0)
                request = self.requests[rid] = Request(self, rid, payload[4 : 4 + length])
                stream = request.input
                if len(payload) > 4 + length:
                    stream.buf += payload[4 + length :]
                stream.complete = True
                self.pending.append(request)
            return
        if kind == T_ENVIRON:
            # A request whose body follows in B frames.
            if rid != 0 and rid not in self.requests:
                request = self.requests[rid] = Request(self, rid, payload)
                self.pending.append(request)
            return
        request = self.requests.get(rid)
        if request is None:
            return  # a late frame of a finished request
        if kind == T_ACK:
            request.unacked -= U32.unpack(payload)[0]
        elif kind == T_BODY:
            request.input.feed(payload)
        elif kind == T_BODY_END:
            request.input.complete = True
        elif kind == T_CANCEL:
            request.cancelled = True

    def wait_until(self, ready):
        """Block until ready() (checked after each frame from the gateway); send what is pending first."""
        self.pipe.flush()
        cond = self.cond
        if cond is None:
            while not ready():
                self.dispatch(self.pipe.frame(block=True))
            return
        with cond:
            while not ready():
                if self.gone:
                    raise PipeGone()
                cond.wait()

    def poll(self):
        """Handle the frames that already arrived, without blocking (the reader thread does it with threads)."""
        if self.cond is not None:
            return
        while True:
            frame = self.pipe.frame(block=False)
            if frame is None:
                return
            self.dispatch(frame)

    # -- serving ------------------------------------------------------------------------------

    def serve(self):
        if self.threads > 1:
            return self.serve_threaded()
        while True:
            if self.pending:
                self.handle(self.pending.popleft(), self.errors)
                continue
            if self.quit:
                return
            self.pipe.flush()
            self.dispatch(self.pipe.frame(block=True))

    def serve_threaded(self):
        """The main thread reads frames; `threads` workers take requests from `pending` in order."""
        cond = self.cond = threading.Condition(threading.Lock())
        for n in range(self.threads):
            threading.Thread(target=self.worker, name="wsgid-%d" % (n + 1), daemon=True).start()
        pipe = self.pipe
        pipe.flush()  # the ready frame
        try:
            while True:
                frame = pipe.frame(block=True)
                with cond:
                    kind = frame[0]
                    self.dispatch(frame)
                    if kind == T_ENVIRON:
                        cond.notify()
                    elif kind != T_QUIT:
                        cond.notify_all()
        except PipeGone:
            pass
        with cond:
            self.gone = True
            cond.notify_all()
            if self.quit:
                # Asked to stop: serve what was sent (its frames all arrived before the end).
                while self.pending or self.running:
                    cond.wait()

    def worker(self):
        cond = self.cond
        errors = ErrorStream(self)
        while True:
            with cond:
                while not self.pending:
                    if self.gone:
                        return
                    cond.wait()
                request = self.pending.popleft()
                self.running += 1
            try:
                self.handle(request, errors)
            except PipeGone:
                pass
            except BaseException:
                sys.stderr.write(format_exc())
            finally:
                with cond:
                    self.running -= 1
                    cond.notify_all()

    def build_environ(self, request, errors):
        payload = request.environ
        request.environ = None
        if payload[:1] == b"\0":
            # Keys and values joined with NUL: one decode, one split.
            parts = payload[1:].decode("latin-1").split("\0")
            environ = dict(zip(parts[::2], parts[1::2])) if len(parts) > 1 else {}
        else:
            environ = {}
            at = 1
            end = len(payload)
            while at < end:
                (klen,) = U32.unpack_from(payload, at)
                at += 4
                key = payload[at : at + klen].decode("latin-1")
                at += klen
                (vlen,) = U32.unpack_from(payload, at)
                at += 4
                environ[key] = payload[at : at + vlen].decode("latin-1")
                at += vlen
        body_file = environ.pop("wsgid.body_file", None)
        if body_file is not None:
            stream = open(os.fsdecode(body_file.encode("latin-1")), "rb")
        else:
            stream = request.input
        environ.update(self.constants)
        environ["wsgi.input"] = stream
        environ["wsgi.errors"] = errors
        return environ

    def handle(self, request, errors):
        if request.cancelled:
            # Cancelled before it started: the app never sees it.
            self.finish(request, DONE_CANCELLED, "")
            return
        outcome = DONE_OK
        detail = ""
        result = None
        stream = None
        try:
            environ = self.build_environ(request, errors)
            stream = environ["wsgi.input"]
            request.method = environ.get("REQUEST_METHOD", "GET")
            result = self.app(environ, request.start_response)
            known = None
            if isinstance(result, (list, tuple)) and len(result) == 1 and isinstance(result[0], bytes):
                known = len(result[0])
            if known is not None:
                # One chunk: held for finish(), which sends it with the head and the end in one
                # frame (no select() for a cancel either).
                if request.head is None:
                    raise AssertionError("the WSGI app returned without calling start_response()")
                if request.head_sent or known > MAX_DATA:
                    request.send_body(result[0], known)
                else:
                    request.whole = result[0]
            else:
                # A generator's chunk leaves before the next one is asked for (the app may wait
                # between them); a list is known at once, its items may share one write.
                streamed = not isinstance(result, (list, tuple))
                for chunk in result:
                    if not isinstance(chunk, bytes):
                        raise TypeError("the WSGI app yielded %s, not bytes" % type(chunk).__name__)
                    if chunk:
                        request.send_body(chunk, known)
                        if streamed:
                            self.pipe.flush()
                    self.poll()
                    if request.cancelled:
                        raise ClientDisconnected("client disconnected")
            if not request.head_sent and request.whole is None:
                if request.head is None:
                    raise AssertionError("the WSGI app returned without calling start_response()")
                request.send_head(0)
        except PipeGone:
            raise
        except Exception:
            if request.cancelled:
                outcome = DONE_CANCELLED
            else:
                outcome = DONE_ERROR
                detail = format_exc()
        finally:
            if result is not None and hasattr(result, "close"):
                try:
                    result.close()
                except PipeGone:
                    raise
                except Exception:
                    if outcome == DONE_OK:
                        outcome = DONE_ERROR
                    detail += "error in the iterable's close():\n" + format_exc()
            if stream is not None and not isinstance(stream, PipeInput):
                try:
                    stream.close()
                except Exception:
                    pass
            errors.flush()
        self.finish(request, outcome, detail)

    def finish(self, request, outcome, detail):
        whole = request.whole
        if whole is not None:
            request.whole = None
            if outcome == DONE_OK:
                head = HEAD_LENGTH.pack(float(len(whole))) + request.head
                body = b"" if request.no_body else whole
                self.forget(request)
                self.pipe.send(T_WHOLE, request.rid, b"".join((U32.pack(len(head)), head, body)))
                self.pipe.flush()
                return
            # close() failed after the body: send it, then the error (the client sees it cut).
            try:
                request.send_body(whole, len(whole))
            except (ClientDisconnected, PipeGone):
                pass
        self.forget(request)
        self.pipe.send(T_DONE, request.rid, bytes([outcome]) + detail.encode("utf-8", "replace"))
        self.pipe.flush()

    def forget(self, request):
        cond = self.cond
        if cond is None:
            self.requests.pop(request.rid, None)
        else:
            with cond:
                self.requests.pop(request.rid, None)


def main():
    common.leave_own_folder(__file__)
    # The worker decides when we stop (it closes fd 3); a terminal's Ctrl-C must not hit the app.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    common.watch_parent()
    bridge = Bridge()
    try:
        kind, _, payload = bridge.pipe.frame(block=True)
        if kind != T_INIT:
            raise SystemExit("wsgid bridge: expected an init frame")
        config = json.loads(payload.decode("utf-8"))
        bridge.window = int(config.get("window") or bridge.window)
        bridge.set_threads(max(1, int(config.get("threads") or 1)))
        common.apply_init(config)
        try:
            bridge.app, label = common.load_app(config)
        except BaseException as exc:
            try:
                text = common.app_traceback(exc)
            except Exception:
                text = format_exc()
            bridge.pipe.send(T_LOAD_FAILED, 0, text.encode("utf-8", "replace"))
            bridge.pipe.flush()
            sys.exit(4)
        bridge.pipe.send(T_READY, 0, label.encode("utf-8", "replace"))
        bridge.serve()
    except PipeGone:
        pass
    try:
        bridge.pipe.flush()
    except PipeGone:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
