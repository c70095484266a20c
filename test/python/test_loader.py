"""The bridge's loader and its load error: the traceback a failed import reports (F frame) is the one
`python -c 'import app'` prints, less that command's own `<string>` frame. The real
wsgi_bridge.py runs in a child process, with its pipes on fds 3 and 4 as the gateway gives them."""

import fcntl
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import unittest

from bridge_support import BRIDGE_DIR, common, decode_frames, frame

BRIDGE = os.path.join(BRIDGE_DIR, "wsgi_bridge.py")


def high(fd):
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return moved


def run_bridge(config, cwd):
    """Start wsgi_bridge.py, send its init frame, return its frames until it exits."""
    to_r, to_w = os.pipe()
    from_r, from_w = os.pipe()
    # Above 4, so that the shell's redirections cannot close one with the other.
    to_r, from_w = [high(fd) for fd in (to_r, from_w)]

    def fds():  # the pipes on fds 3 and 4, as the gateway's spawn() puts them
        os.dup2(to_r, 3)
        os.dup2(from_w, 4)

    child = subprocess.Popen(
        [sys.executable, BRIDGE], cwd=cwd, preexec_fn=fds, close_fds=False,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    os.close(to_r)
    os.close(from_w)
    os.write(to_w, frame(common.T_INIT, 0, json.dumps(config).encode()))
    os.close(to_w)  # then the end of the pipe: a loaded app's bridge exits quietly
    chunks = []
    while True:
        data = os.read(from_r, 65536)
        if not data:
            break
        chunks.append(data)
    os.close(from_r)
    _, stderr = child.communicate(timeout=30)
    assert not stderr, stderr
    return child.returncode, decode_frames(b"".join(chunks))


def python_import(module, cwd):
    """What `python -c 'import <module>'` prints, without its `<string>` frame."""
    result = subprocess.run([sys.executable, "-c", "import " + module], cwd=cwd, capture_output=True, text=True, timeout=30)
    return "".join(line for line in result.stderr.splitlines(True) if line != '  File "<string>", line 1, in <module>\n')


class LoaderTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="wsgid-loader-")

    def write(self, name, source):
        with open(os.path.join(self.dir, name), "w") as f:
            f.write(textwrap.dedent(source))

    def config(self, module, **entry):
        return {"entry": dict({"module": module, "call": False}, **entry), "candidates": ["application", "app"], "sysPath": [self.dir], "cwd": self.dir, "window": 65536}

    def assert_load_error_is_pythons(self, module):
        code, frames = run_bridge(self.config(module), self.dir)
        self.assertEqual(code, 4)
        self.assertEqual([f[0] for f in frames], ["F"])
        self.assertEqual(frames[0][2].decode("utf-8"), python_import(module, self.dir))
        return frames[0][2].decode("utf-8")

    def test_an_exception_in_a_nested_import(self):
        self.write("app_outer.py", "import app_inner\napplication = None\n")
        self.write("app_inner.py", "def f():\n    return 1 / 0\nf()\n")
        text = self.assert_load_error_is_pythons("app_outer")
        self.assertIn("ZeroDivisionError", text)

    def test_a_missing_module_imported_by_the_app(self):
        self.write("app_missing.py", "import this_module_does_not_exist_wsgid\n")
        self.assertIn("ModuleNotFoundError", self.assert_load_error_is_pythons("app_missing"))

    def test_a_syntax_error_spanning_lines(self):
        self.write("app_syntax.py", "x = (1,\n     2\ny = 3\n")
        self.assertIn("SyntaxError", self.assert_load_error_is_pythons("app_syntax"))

    def test_a_module_without_an_app_names_the_candidates(self):
        self.write("app_empty.py", "x = 1\n")
        code, frames = run_bridge(self.config("app_empty"), self.dir)
        self.assertEqual(code, 4)
        self.assertIn("AttributeError: app_empty has none of the attributes application, app", frames[0][2].decode())

    def test_a_loaded_app_is_ready_with_its_label(self):
        self.write("app_ok.py", "def make():\n    return lambda environ, start_response: []\n")
        code, frames = run_bridge(self.config("app_ok", attr="make", call=True), self.dir)
        self.assertEqual(code, 0)  # fd 3 closed after the init frame: it exits quietly
        self.assertEqual(frames[0], ("R", 0, b"app_ok:make()"))


if __name__ == "__main__":
    unittest.main()
