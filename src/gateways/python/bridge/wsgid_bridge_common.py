"""What wsgid's two Python bridges share (wsgi_bridge.py, asgi_bridge.py): the pipe codec (frame
reader on fd 3, batching frame writer on fd 4; src/gateways/python/pipe.ts describes the frames),
the frame letters, the app loader and its traceback, the parent watch and the init frame's
settings. Standard library only; imported normally by the bridges (their own folder is sys.path[0]
when Python starts them, and is removed before the app is loaded).
"""

import importlib
import importlib.util
import os
import select
import signal
import struct
import sys
import threading

IN_FD = 3
OUT_FD = 4
HEADER = struct.Struct(">BII")
U32 = struct.Struct(">I")
HEAD_LENGTH = struct.Struct(">d")
MAX_DATA = 256 * 1024
FLUSH_AT = 64 * 1024

# The frame letters, one per frame, as src/gateways/python/pipe.ts declares them (`T`: T.bodyEnd is
# T_BODY_END here); test/unit/python-bridge.test.ts checks that the two tables agree.
# gateway -> bridge
T_INIT, T_ENVIRON, T_REQUEST, T_SCOPE = ord("I"), ord("E"), ord("G"), ord("S")
T_BODY, T_BODY_END, T_ACK, T_CANCEL, T_QUIT = ord("B"), ord("b"), ord("A"), ord("C"), ord("Q")
# bridge -> gateway
T_READY, T_LOAD_FAILED, T_LOG = ord("R"), ord("F"), ord("L")
T_HEAD, T_DATA, T_DONE, T_WHOLE = ord("H"), ord("D"), ord("Z"), ord("W")
T_WS_ACCEPT, T_WS_CLOSE = ord("K"), ord("X")
# both ways
T_WS_FRAME = ord("M")
DONE_OK, DONE_ERROR, DONE_CANCELLED = 0, 1, 2
LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR = 0, 1, 2, 3


def format_exc():
    """traceback.format_exc(), imported on the first error (about 0.4 MB the app may never need)."""
    import traceback

    return traceback.format_exc()


class PipeGone(Exception):
    """The gateway closed its end: exit quietly."""


class Pipe:
    """Frame reader on fd 3 and batching frame writer on fd 4."""

    def __init__(self, in_fd=IN_FD, out_fd=OUT_FD):
        self.in_fd = in_fd
        self.out_fd = out_fd
        self.buf = bytearray()
        self.pos = 0
        self.out = []
        self.out_size = 0
        # Only the main thread serves requests, but an app thread may write to wsgi.errors.
        self.lock = threading.RLock()

    def _fill(self, block):
        if not block:
            ready, _, _ = select.select([self.in_fd], [], [], 0)
            if not ready:
                return False
        try:
            data = os.read(self.in_fd, 256 * 1024)
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
                written = os.write(self.out_fd, data)
                if written == len(data):
                    return
                out = [memoryview(data)[written:]]
            while out:
                written = os.writev(self.out_fd, out[:512])
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


# -- loading ---------------------------------------------------------------------------------------


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


# The bridges' own source files, whose frames a load error's traceback leaves out (each bridge
# adds itself).
BRIDGE_FILES = {os.path.abspath(__file__)}


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
    ours = BRIDGE_FILES

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
    import traceback  # lazily, as in format_exc()

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


def apply_init(config):
    """The init frame's sys.path and working directory, before the app is loaded."""
    for folder in reversed(config.get("sysPath") or []):
        if folder not in sys.path:
            sys.path.insert(0, folder)
    if config.get("cwd"):
        os.chdir(config["cwd"])


def leave_own_folder(script):
    """Take the bridges' folder off sys.path (Python put it first): it is not the app's."""
    if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(script)):
        del sys.path[0]
