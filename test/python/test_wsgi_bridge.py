"""wsgi_bridge.py's WSGI handling (PEP 3333): environ in, start_response, write(), the iterable and
its close(), exc_info, and the frames that go back to the gateway. A real Bridge serves requests
written into a real pipe; its answer is read from another."""

import os
import struct
import sys
import threading
import unittest

from bridge_support import Drain, common, decode_frames, frame, request_payload

import wsgi_bridge  # noqa: E402  (bridge_support put its folder on sys.path)

ENVIRON = [
    ("REQUEST_METHOD", "GET"),
    ("SCRIPT_NAME", ""),
    ("PATH_INFO", "/hello"),
    ("QUERY_STRING", "a=1"),
    ("SERVER_NAME", "localhost"),
    ("SERVER_PORT", "80"),
    ("SERVER_PROTOCOL", "HTTP/1.1"),
    ("wsgi.url_scheme", "http"),
]


def serve(app, requests, threads=1):
    """Serve `requests` ((id, environ pairs, body)...) with `app`; the frames the bridge sent."""
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    drain = Drain(out_r)
    bridge = wsgi_bridge.Bridge()
    bridge.pipe = common.Pipe(in_r, out_w)
    bridge.app = app
    bridge.set_threads(threads)
    data = b"".join(frame(common.T_REQUEST, rid, request_payload(pairs, body)) for rid, pairs, body in requests)
    # As the gateway does: the requests, then quit. A thread pool's reader stops at the pipe's end,
    # which the gateway closes after its quit; one thread stops at the quit itself.
    def write():
        os.write(in_w, data + frame(common.T_QUIT, 0))
        if threads > 1:
            os.close(in_w)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        bridge.serve()
        bridge.pipe.flush()
    finally:
        writer.join()
        if threads == 1:
            os.close(in_w)
        os.close(in_r)
        os.close(out_w)
    return decode_frames(drain.result())


def head(payload):
    """An H payload: (body length or None, status, [(name, value)...])."""
    (length,) = struct.unpack_from(">d", payload)
    parts = payload[8:].decode("latin-1").split("\0")
    return (None if length < 0 else int(length)), parts[0], list(zip(parts[1::2], parts[2::2]))


def whole(payload):
    """A W payload: the H payload and the body."""
    (size,) = struct.unpack_from(">I", payload)
    return head(payload[4 : 4 + size]), payload[4 + size :]


def done(frames):
    letter, _, payload = frames[-1]
    assert letter == "Z", frames
    return payload[0], payload[1:].decode("utf-8")


class WsgiBridgeTest(unittest.TestCase):
    def test_a_one_element_list_is_one_whole_frame_with_its_length(self):
        def app(environ, start_response):
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"hello"]

        frames = serve(app, [(1, ENVIRON, b"")])
        self.assertEqual([(f[0], f[1]) for f in frames], [("W", 1)])
        self.assertEqual(whole(frames[0][2]), ((5, "200 OK", [("Content-Type", "text/plain")]), b"hello"))

    def test_the_environ_the_app_sees(self):
        seen = {}

        def app(environ, start_response):
            seen.update(environ)
            seen["body"] = environ["wsgi.input"].read()
            start_response("204 No Content", [])
            return []

        frames = serve(app, [(9, ENVIRON + [("CONTENT_LENGTH", "4"), ("HTTP_X_A", "\xe9")], b"ping")])
        for key, value in ENVIRON:
            self.assertEqual(seen[key], value, key)
        self.assertEqual(seen["HTTP_X_A"], "\xe9")  # latin-1, one char per byte (PEP 3333)
        self.assertEqual(seen["body"], b"ping")
        self.assertEqual(seen["wsgi.version"], (1, 0))
        self.assertIs(seen["wsgi.multithread"], False)
        self.assertIs(seen["wsgi.input_terminated"], True)
        self.assertEqual([f[0] for f in frames], ["H", "Z"])
        self.assertEqual(head(frames[0][2]), (0, "204 No Content", []))
        self.assertEqual(done(frames), (common.DONE_OK, ""))

    def test_a_generator_streams_head_data_done_and_is_closed(self):
        closed = []

        def app(environ, start_response):
            start_response("200 OK", [("X-A", "1")])

            def body():
                try:
                    yield b"one"
                    yield b""
                    yield b"two"
                finally:
                    closed.append(True)

            return body()

        frames = serve(app, [(2, ENVIRON, b"")])
        self.assertEqual([f[0] for f in frames], ["H", "D", "D", "Z"])
        self.assertEqual(head(frames[0][2]), (None, "200 OK", [("X-A", "1")]))
        self.assertEqual([f[2] for f in frames[1:3]], [b"one", b"two"])
        self.assertEqual(done(frames), (common.DONE_OK, ""))
        self.assertEqual(closed, [True])

    def test_write_sends_before_the_iterable(self):
        def app(environ, start_response):
            write = start_response("200 OK", [])
            write(b"first ")
            return [b"second", b"!"]

        frames = serve(app, [(3, ENVIRON, b"")])
        self.assertEqual([(f[0], f[2]) for f in frames[1:]], [("D", b"first "), ("D", b"second"), ("D", b"!"), ("Z", b"\0")])

    def test_exc_info_before_the_head_replaces_the_status(self):
        def app(environ, start_response):
            start_response("200 OK", [("X-Ok", "1")])
            try:
                raise KeyError("boom")
            except KeyError:
                start_response("500 Internal Server Error", [("Content-Type", "text/plain")], sys.exc_info())
            return [b"sorry"]

        frames = serve(app, [(4, ENVIRON, b"")])
        self.assertEqual(whole(frames[0][2]), ((5, "500 Internal Server Error", [("Content-Type", "text/plain")]), b"sorry"))

    def test_exc_info_after_the_head_reraises_into_the_app(self):
        def app(environ, start_response):
            write = start_response("200 OK", [])
            write(b"partial")
            try:
                raise ValueError("late failure")
            except ValueError:
                start_response("500 Internal Server Error", [], sys.exc_info())
            return [b"never"]

        frames = serve(app, [(5, ENVIRON, b"")])
        self.assertEqual([f[0] for f in frames], ["H", "D", "Z"])
        outcome, detail = done(frames)
        self.assertEqual(outcome, common.DONE_ERROR)
        self.assertIn("ValueError: late failure", detail)

    def test_start_response_twice_without_exc_info_is_an_error(self):
        def app(environ, start_response):
            start_response("200 OK", [])
            start_response("404 Not Found", [])
            return [b""]

        outcome, detail = done(serve(app, [(6, ENVIRON, b"")]))
        self.assertEqual(outcome, common.DONE_ERROR)
        self.assertIn("start_response() called a second time without exc_info", detail)

    def test_no_start_response_and_a_raising_app_are_errors_with_the_traceback(self):
        def silent(environ, start_response):
            return [b"x"]

        def raising(environ, start_response):
            raise RuntimeError("the app broke")

        outcome, detail = done(serve(silent, [(7, ENVIRON, b"")]))
        self.assertEqual(outcome, common.DONE_ERROR)
        self.assertIn("returned without calling start_response()", detail)
        outcome, detail = done(serve(raising, [(8, ENVIRON, b"")]))
        self.assertEqual(outcome, common.DONE_ERROR)
        self.assertTrue(detail.startswith("Traceback (most recent call last):"), detail)
        self.assertIn("RuntimeError: the app broke", detail)

    def test_an_unsafe_header_is_refused_by_name(self):
        def app(environ, start_response):
            start_response("200 OK", [("X-Evil", "a\r\nSet-Cookie: b")])
            return [b""]

        outcome, detail = done(serve(app, [(10, ENVIRON, b"")]))
        self.assertEqual(outcome, common.DONE_ERROR)
        self.assertIn("invalid response header value for X-Evil", detail)

    def test_an_error_in_close_fails_a_complete_response(self):
        class Body:
            def __iter__(self):
                yield b"all of it"

            def close(self):
                raise OSError("close failed")

        def app(environ, start_response):
            start_response("200 OK", [])
            return Body()

        frames = serve(app, [(11, ENVIRON, b"")])
        self.assertEqual([f[0] for f in frames], ["H", "D", "Z"])
        outcome, detail = done(frames)
        self.assertEqual(outcome, common.DONE_ERROR)
        self.assertIn("error in the iterable's close():", detail)
        self.assertIn("OSError: close failed", detail)

    def test_head_requests_get_the_length_but_no_body(self):
        def app(environ, start_response):
            start_response("200 OK", [])
            return [b"twelve bytes"]

        frames = serve(app, [(12, [("REQUEST_METHOD", "HEAD")] + ENVIRON[1:], b"")])
        self.assertEqual(whole(frames[0][2]), ((12, "200 OK", []), b""))

    def test_wsgi_errors_lines_become_log_frames(self):
        def app(environ, start_response):
            environ["wsgi.errors"].write("a warning\n")
            start_response("200 OK", [])
            return [b""]

        frames = serve(app, [(13, ENVIRON, b"")])
        self.assertIn(("L", 0, bytes([common.LOG_WARN]) + b"a warning"), frames)

    def test_pipelined_requests_are_served_in_order_by_a_thread_pool(self):
        def app(environ, start_response):
            start_response("200 OK", [])
            return [environ["PATH_INFO"].encode()]

        requests = [(n, [("REQUEST_METHOD", "GET"), ("PATH_INFO", "/%d" % n)], b"") for n in range(1, 6)]
        frames = serve(app, requests, threads=3)
        bodies = {rid: whole(payload)[1] for letter, rid, payload in frames if letter == "W"}
        self.assertEqual(bodies, {n: b"/%d" % n for n in range(1, 6)})


if __name__ == "__main__":
    unittest.main()
