"""wsgid's Python side: runs ONE WSGI application (PEP 3333) for the wsgid WSGI gateway.

Standard library only. Started by src/gateways/wsgi/index.ts as `python bridge.py`; it talks to the
gateway over two pipes, fd 3 (gateway -> bridge) and fd 4 (bridge -> gateway), so the app's own
stdout and stderr stay free (the gateway forwards them to wsgid's log). The framing is described
in src/gateways/wsgi/pipe.ts. One request at a time, but the gateway pipelines: it may send the
environ (and small body) of later requests while one runs; they wait here, in order, in
`Bridge.pending`, and are served one after the other without waiting for the gateway.
"""

import collections
import importlib
import importlib.util
import json
import os
import re
import select
import signal
import struct
import sys
import threading
import traceback

IN_FD = 3
OUT_FD = 4
HEADER = struct.Struct(">BII")
U32 = struct.Struct(">I")
U16 = struct.Struct(">H")
HEAD_FIXED = struct.Struct(">dH")
MAX_DATA = 256 * 1024
FLUSH_AT = 64 * 1024

T_INIT, T_ENVIRON, T_BODY, T_BODY_END = ord("I"), ord("E"), ord("B"), ord("b")
T_ACK, T_CANCEL, T_QUIT = ord("A"), ord("C"), ord("Q")
T_READY, T_LOAD_FAILED, T_LOG = ord("R"), ord("F"), ord("L")
T_HEAD, T_DATA, T_DONE = ord("H"), ord("D"), ord("Z")
DONE_OK, DONE_ERROR, DONE_CANCELLED = 0, 1, 2
LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR = 0, 1, 2, 3

STATUS_RE = re.compile(r"[1-9][0-9][0-9] [^\r\n\0]*\Z")
TOKEN_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")
BAD_VALUE_RE = re.compile(r"[\r\n\0]")


class PipeGone(Exception):
    """The gateway closed its end: exit quietly."""


class ClientDisconnected(OSError):
    """Raised into the app (by write(), or between chunks) when the client went away."""


class Pipe:
    """Frame reader on fd 3 and batching frame writer on fd 4."""

    def __init__(self):
        self.buf = bytearray()
        self.pos = 0
        self.out = []
        self.out_size = 0
        # Only the main thread serves requests, but an app thread may write to wsgi.errors.
        self.lock = threading.RLock()

    def _fill(self, block):
        if not block:
            ready, _, _ = select.select([IN_FD], [], [], 0)
            if not ready:
                return False
        try:
            data = os.read(IN_FD, 256 * 1024)
        except InterruptedError:
            return True
        if not data:
            raise PipeGone()
        if self.pos:
            if self.pos == len(self.buf):
                self.buf = bytearray(data)
                self.pos = 0
                return True
            del self.buf[: self.pos]
            self.pos = 0
        self.buf += data
        return True

    def frame(self, block=True):
        """The next (type, id, payload) frame; None if block is False and none is complete."""
        while True:
            avail = len(self.buf) - self.pos
            if avail >= 9:
                kind, rid, length = HEADER.unpack_from(self.buf, self.pos)
                if avail >= 9 + length:
                    start = self.pos + 9
                    payload = bytes(self.buf[start : start + length])
                    self.pos = start + length
                    return kind, rid, payload
            if not self._fill(block):
                return None

    def send(self, kind, rid, payload=b""):
        with self.lock:
            self.out.append(HEADER.pack(kind, rid, len(payload)))
            if payload:
                self.out.append(payload)
            self.out_size += 9 + len(payload)
            if self.out_size >= FLUSH_AT:
                self.flush()

    def flush(self):
        with self.lock:
            out = self.out
            if not out:
                return
            self.out = []
            self.out_size = 0
            self._write(out)

    def _write(self, out):
        try:
            if 1 < len(out) <= 64 and sum(map(len, out)) <= FLUSH_AT:
                # A small response (head + data + done): one plain write of one joined buffer.
                data = b"".join(out)
                written = os.write(OUT_FD, data)
                if written == len(data):
                    return
                out = [memoryview(data)[written:]]
            while out:
                written = os.writev(OUT_FD, out[:512])
                while written:
                    first = out[0]
                    if written >= len(first):
                        written -= len(first)
                        out.pop(0)
                    else:
                        out[0] = memoryview(first)[written:]
                        written = 0
        except (BrokenPipeError, ConnectionResetError):
            raise PipeGone()


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
        while not self.complete and (size < 0 or len(self.buf) < size):
            self.bridge.pump()

    def _take(self, size):
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
            self.bridge.pump()

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
    """A request received from the gateway: its environ frame, its body so far, a cancel flag."""

    __slots__ = ("rid", "environ", "input", "cancelled")

    def __init__(self, bridge, rid, environ):
        self.rid = rid
        self.environ = environ
        self.input = PipeInput(bridge)
        self.cancelled = False


class Bridge:
    def __init__(self):
        self.pipe = Pipe()
        self.app = None
        self.window = 1024 * 1024
        self.errors = ErrorStream(self)
        self.rid = 0
        self.quit = False
        # Requests received and not finished, by id; `pending` holds those not started, in order.
        self.requests = {}
        self.pending = collections.deque()
        self.current = None
        self.reset()

    @property
    def cancelled(self):
        current = self.current
        return current is not None and current.cancelled

    def reset(self):
        self.input = None
        self.unacked = 0
        self.status = None
        self.status_code = 200
        self.headers = None
        self.head_sent = False
        self.no_body = False
        self.method = "GET"

    # -- frames -------------------------------------------------------------------------------

    def log(self, level, text):
        self.pipe.send(T_LOG, self.rid, bytes([level]) + text.encode("utf-8", "replace"))

    def dispatch(self, frame):
        kind, rid, payload = frame
        if kind == T_QUIT:
            self.quit = True
            return
        if kind == T_ENVIRON:
            # A request (maybe sent ahead while another runs): it waits its turn in `pending`.
            if rid != 0 and rid not in self.requests:
                request = self.requests[rid] = Request(self, rid, payload)
                self.pending.append(request)
            return
        request = self.requests.get(rid)
        if request is None:
            return  # a late frame of a finished request
        if kind == T_ACK:
            if request is self.current:
                self.unacked -= U32.unpack(payload)[0]
        elif kind == T_BODY:
            request.input.feed(payload)
        elif kind == T_BODY_END:
            request.input.complete = True
        elif kind == T_CANCEL:
            request.cancelled = True

    def pump(self):
        """Block for one frame from the gateway (after sending what is pending) and handle it."""
        self.pipe.flush()
        self.dispatch(self.pipe.frame(block=True))

    def poll(self):
        """Handle the frames that already arrived, without blocking."""
        while True:
            frame = self.pipe.frame(block=False)
            if frame is None:
                return
            self.dispatch(frame)

    # -- one request --------------------------------------------------------------------------

    def serve(self):
        """Serve the received requests in order; block for frames only when none is waiting."""
        while True:
            if self.pending:
                self.handle(self.pending.popleft())
                continue
            if self.quit:
                return
            self.pipe.flush()
            self.dispatch(self.pipe.frame(block=True))

    def build_environ(self, request):
        payload = request.environ
        request.environ = None
        environ = {}
        at = 0
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
            self.input = None
        else:
            stream = self.input = request.input
        environ["wsgi.version"] = (1, 0)
        environ["wsgi.input"] = stream
        environ["wsgi.errors"] = self.errors
        environ["wsgi.multithread"] = False
        environ["wsgi.multiprocess"] = True
        environ["wsgi.run_once"] = False
        environ["wsgi.input_terminated"] = True
        environ["wsgi.file_wrapper"] = FileWrapper
        return environ

    def handle(self, request):
        rid = request.rid
        self.reset()
        self.rid = rid
        self.current = request
        if request.cancelled:
            # Cancelled before it started: the app never sees it.
            self.finish(request, DONE_CANCELLED, "")
            return
        outcome = DONE_OK
        detail = ""
        result = None
        stream = None
        try:
            environ = self.build_environ(request)
            stream = environ["wsgi.input"]
            self.method = environ.get("REQUEST_METHOD", "GET")
            result = self.app(environ, self.start_response)
            known = None
            if isinstance(result, (list, tuple)) and len(result) == 1 and isinstance(result[0], bytes):
                known = len(result[0])
            for chunk in result:
                if not isinstance(chunk, bytes):
                    raise TypeError("the WSGI app yielded %s, not bytes" % type(chunk).__name__)
                if chunk:
                    self.send_body(chunk, known)
                self.poll()
                if self.cancelled:
                    raise ClientDisconnected("client disconnected")
            if not self.head_sent:
                if self.status is None:
                    raise AssertionError("the WSGI app returned without calling start_response()")
                self.send_head(0)
        except PipeGone:
            raise
        except Exception:
            if self.cancelled:
                outcome = DONE_CANCELLED
            else:
                outcome = DONE_ERROR
                detail = traceback.format_exc()
        finally:
            if result is not None and hasattr(result, "close"):
                try:
                    result.close()
                except PipeGone:
                    raise
                except Exception:
                    if outcome == DONE_OK:
                        outcome = DONE_ERROR
                    detail += "error in the iterable's close():\n" + traceback.format_exc()
            if stream is not None and not isinstance(stream, PipeInput):
                try:
                    stream.close()
                except Exception:
                    pass
            self.errors.flush()
        self.finish(request, outcome, detail)

    def finish(self, request, outcome, detail):
        self.requests.pop(request.rid, None)
        self.pipe.send(T_DONE, request.rid, bytes([outcome]) + detail.encode("utf-8", "replace"))
        self.pipe.flush()
        self.rid = 0
        self.current = None
        self.reset()

    def start_response(self, status, headers, exc_info=None):
        if exc_info is not None:
            try:
                if self.head_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise AssertionError("start_response() called a second time without exc_info")
        if type(status) is not str:
            raise TypeError("status must be a str, not %s" % type(status).__name__)
        if not STATUS_RE.match(status):
            raise ValueError("invalid status %r (expected e.g. '200 OK')" % status)
        encoded_status = status.encode("latin-1")
        if not isinstance(headers, (list, tuple)):
            raise TypeError("response headers must be a list, not %s" % type(headers).__name__)
        encoded = []
        for item in headers:
            if not isinstance(item, (tuple, list)) or len(item) != 2:
                raise TypeError("a response header must be a (name, value) tuple, got %r" % (item,))
            name, value = item
            if type(name) is not str or type(value) is not str:
                raise TypeError("header name and value must be str, got %r" % (item,))
            if not TOKEN_RE.match(name):
                raise ValueError("invalid response header name %r" % name)
            if BAD_VALUE_RE.search(value):
                raise ValueError("invalid response header value for %s: %r" % (name, value))
            if name.lower() == "content-length" and not value.strip().isdigit():
                raise ValueError("invalid Content-Length %r" % value)
            encoded.append((name.encode("latin-1"), value.encode("latin-1")))
        self.status = encoded_status
        self.status_code = int(status[:3])
        self.headers = encoded
        code = self.status_code
        self.no_body = self.method == "HEAD" or code in (204, 304) or code < 200
        return self.write

    def write(self, data):
        if self.status is None:
            raise AssertionError("write() called before start_response()")
        if not isinstance(data, bytes):
            raise TypeError("write() takes bytes, not %s" % type(data).__name__)
        if data:
            self.send_body(data, None)

    def send_head(self, length):
        parts = [HEAD_FIXED.pack(float(-1 if length is None else length), len(self.status)), self.status]
        parts.append(U16.pack(len(self.headers)))
        for name, value in self.headers:
            parts.append(U16.pack(len(name)))
            parts.append(name)
            parts.append(U32.pack(len(value)))
            parts.append(value)
        self.head_sent = True
        self.pipe.send(T_HEAD, self.rid, b"".join(parts))

    def send_body(self, data, known):
        if self.cancelled:
            raise ClientDisconnected("client disconnected")
        if not self.head_sent:
            self.send_head(known)
        if self.no_body:
            return
        view = memoryview(data)
        for offset in range(0, len(view), MAX_DATA):
            piece = view[offset : offset + MAX_DATA]
            size = len(piece)
            while self.unacked > 0 and self.unacked + size > self.window:
                self.pump()
                if self.cancelled:
                    raise ClientDisconnected("client disconnected")
            self.unacked += size
            self.pipe.send(T_DATA, self.rid, piece)


# -- loading --------------------------------------------------------------------------------------


def resolve_attr(obj, path):
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def pick(module, candidates, label):
    for name in candidates:
        if hasattr(module, name):
            return resolve_attr(module, name), "%s:%s" % (label, name)
    raise AttributeError("%s has none of the attributes %s" % (label, ", ".join(candidates)))


def load_file(path):
    name = os.path.splitext(os.path.basename(path))[0] or "wsgi_app"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError("cannot load %s" % path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    folder = os.path.dirname(path)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec.loader.exec_module(module)
    return module


def load_app(config):
    candidates = config.get("candidates") or ["application", "app"]
    django = config.get("django")
    entry = config.get("entry")
    if django is not None:
        if django.get("settingsModule"):
            os.environ.setdefault("DJANGO_SETTINGS_MODULE", django["settingsModule"])
        if entry is None:
            from django.core.wsgi import get_wsgi_application

            app = get_wsgi_application()
            return app, "Django (DJANGO_SETTINGS_MODULE=%s)" % os.environ.get("DJANGO_SETTINGS_MODULE")
    attr = entry.get("attr")
    if entry.get("file"):
        module = load_file(entry["file"])
        label = entry["file"]
    else:
        label = entry["module"]
        try:
            module = importlib.import_module(entry["module"])
        except ModuleNotFoundError:
            fallback = entry.get("fallbackModule")
            if not fallback:
                raise
            first = sys.exc_info()
            try:
                module = importlib.import_module(fallback)
            except Exception:
                raise first[1].with_traceback(first[2]) from None
            label, attr = fallback, None
    if attr:
        try:
            app = resolve_attr(module, attr)
        except AttributeError:
            fallback = entry.get("fallbackModule")
            if not fallback:
                raise
            app, label = pick(importlib.import_module(fallback), candidates, fallback)
        else:
            label = "%s:%s" % (label, attr)
    else:
        app, label = pick(module, candidates, label)
    if entry.get("call"):
        app = app()
        label += "()"
    if not callable(app):
        raise TypeError("%s is not callable (%s): not a WSGI application" % (label, type(app).__name__))
    return app, label


_IMPORTLIB_FILES = ("<frozen importlib._bootstrap>", "<frozen importlib._bootstrap_external>")


def app_traceback(exc):
    """The traceback as `python -c 'import app'` prints it: the bridge's frames and importlib's calls
    into the app are left out, then importlib's internal frames are removed as CPython's import
    statement does (Python/import.c remove_importlib_frames: all of them for an ImportError, else
    the runs that end in _call_with_frames_removed)."""
    entries = []
    tb = exc.__traceback__
    while tb is not None:
        entries.append(tb)
        tb = tb.tb_next
    importlib_dir = os.path.dirname(importlib.__file__)
    ours = (os.path.abspath(__file__), )

    def wsgid_or_importlib(entry):
        name = entry.tb_frame.f_code.co_filename
        return name in ours or name in _IMPORTLIB_FILES or os.path.dirname(name) == importlib_dir

    while entries and wsgid_or_importlib(entries[0]):
        entries.pop(0)
    always = isinstance(exc, ImportError)
    kept, run = [], []
    for entry in entries:
        code = entry.tb_frame.f_code
        if code.co_filename in _IMPORTLIB_FILES:
            run.append(entry)
            if code.co_name == "_call_with_frames_removed":
                run = []  # the run ends here: dropped
            continue
        if not always:
            kept.extend(run)
        run = []
        kept.append(entry)
    if not always:
        kept.extend(run)
    for before, after in zip(kept, kept[1:] + [None]):
        before.tb_next = after
    exc = exc.with_traceback(kept[0] if kept else None)
    if isinstance(exc, SyntaxError) and exc.text and exc.lineno and exc.end_lineno and exc.end_lineno > exc.lineno:
        # An error spanning lines: Python's own printer underlines to the end of the first line,
        # the traceback module before 3.12 nothing; show what `python -c 'import app'` shows.
        exc.end_offset = len(exc.text.rstrip("\n")) + 1
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    if not kept:
        # A SyntaxError in the app's file has no frame of its own: Python shows the header anyway.
        text = "Traceback (most recent call last):\n" + text
    return text


def watch_parent():
    """Die with the worker even if it is SIGKILLed while the app hangs (Linux prctl)."""
    parent = os.environ.pop("WSGID_PARENT_PID", None)
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except Exception:
        return
    if parent is not None and str(os.getppid()) != parent:
        os._exit(0)  # the worker already died before prctl took effect


def main():
    if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
        del sys.path[0]  # the bridge's own folder is not the app's
    # The worker decides when we stop (it closes fd 3); a terminal's Ctrl-C must not hit the app.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    watch_parent()
    bridge = Bridge()
    try:
        kind, _, payload = bridge.pipe.frame(block=True)
        if kind != T_INIT:
            raise SystemExit("wsgid bridge: expected an init frame")
        config = json.loads(payload.decode("utf-8"))
        bridge.window = int(config.get("window") or bridge.window)
        for folder in reversed(config.get("sysPath") or []):
            if folder not in sys.path:
                sys.path.insert(0, folder)
        if config.get("cwd"):
            os.chdir(config["cwd"])
        try:
            bridge.app, label = load_app(config)
        except BaseException as exc:
            try:
                text = app_traceback(exc)
            except Exception:
                text = traceback.format_exc()
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
