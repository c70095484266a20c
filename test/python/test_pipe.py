"""The pipe codec of wsgid_bridge_common.py: frames read from fd 3, frames written to fd 4."""

import os
import select
import unittest

from bridge_support import common, decode_frames, frame


class PipeTest(unittest.TestCase):
    def setUp(self):
        self.in_r, self.in_w = os.pipe()
        self.out_r, self.out_w = os.pipe()
        self.pipe = common.Pipe(self.in_r, self.out_w)

    def tearDown(self):
        for fd in (self.in_r, self.in_w, self.out_r, self.out_w):
            try:
                os.close(fd)
            except OSError:
                pass

    def readable(self, fd):
        return bool(select.select([fd], [], [], 0)[0])

    def test_reads_frames_in_order_with_their_ids_and_payloads(self):
        os.write(self.in_w, frame(common.T_ENVIRON, 7, b"abc") + frame(common.T_BODY_END, 7) + frame(common.T_QUIT, 0))
        self.assertEqual(self.pipe.frame(), (common.T_ENVIRON, 7, b"abc"))
        self.assertEqual(self.pipe.frame(), (common.T_BODY_END, 7, b""))
        self.assertEqual(self.pipe.frame(), (common.T_QUIT, 0, b""))

    def test_a_frame_split_across_reads_is_joined(self):
        data = frame(common.T_BODY, 0xFFFFFFFF, bytes(range(256)) * 10)
        for cut in (1, 8, 9, 100):
            os.write(self.in_w, data[:cut])
            self.assertIsNone(self.pipe.frame(block=False), cut)
            os.write(self.in_w, data[cut:])
            self.assertEqual(self.pipe.frame(block=False), (common.T_BODY, 0xFFFFFFFF, bytes(range(256)) * 10))

    def test_the_end_of_the_pipe_is_PipeGone(self):
        os.write(self.in_w, frame(common.T_ACK, 1, b"\0\0\0\1"))
        os.close(self.in_w)
        self.assertEqual(self.pipe.frame(), (common.T_ACK, 1, b"\0\0\0\1"))
        with self.assertRaises(common.PipeGone):
            self.pipe.frame()

    def test_small_frames_wait_for_flush_then_leave_in_one_piece(self):
        self.pipe.send(common.T_HEAD, 3, b"h" * 10)
        self.pipe.send(common.T_DATA, 3, b"d" * 20)
        self.pipe.send(common.T_DONE, 3, bytes([common.DONE_OK]))
        self.assertFalse(self.readable(self.out_r))
        self.pipe.flush()
        data = os.read(self.out_r, 1 << 16)
        self.assertEqual(
            decode_frames(data),
            [("H", 3, b"h" * 10), ("D", 3, b"d" * 20), ("Z", 3, b"\0")],
        )

    def test_frames_past_64_KiB_are_written_without_a_flush(self):
        self.pipe.send(common.T_DATA, 1, b"x" * (common.FLUSH_AT - 9))
        data = os.read(self.out_r, 1 << 17)
        self.assertEqual(decode_frames(data), [("D", 1, b"x" * (common.FLUSH_AT - 9))])

    def test_a_closed_gateway_end_is_PipeGone_on_write(self):
        os.close(self.out_r)
        self.pipe.send(common.T_LOG, 0, b"\1hello")
        with self.assertRaises(common.PipeGone):
            self.pipe.flush()


if __name__ == "__main__":
    unittest.main()
