/** The shared ReplyChannel test double (test/helpers/reply-channel.ts) checks the contract it stands for. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TestReply } from '../helpers/reply-channel.js';

test('records bytes (strings as latin1) and how the response ended', () => {
  const reply = new TestReply({ keepAlive: false });
  assert.equal(reply.write('HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n'), true);
  reply.end(Buffer.from('\xe9', 'latin1'));
  assert.equal(reply.bytes, 39);
  assert.equal(reply.writes, 2);
  assert.equal(reply.closeRequested, false);
  assert.equal(reply.closeAfter, true, 'not keep-alive');
  assert.equal(reply.parsed().status, 200);
});

test('refuses a write after end, a second end and an end after abort', () => {
  const ended = new TestReply();
  ended.end();
  assert.throws(() => ended.write('x'), /write after end/);
  assert.throws(() => ended.end(), /end called twice/);
  ended.abort(); // as the real channel: nothing left to abort
  assert.equal(ended.aborted, false);
  const aborted = new TestReply();
  aborted.abort();
  assert.throws(() => aborted.write('x'), /write after abort/);
  assert.throws(() => aborted.end(), /end after abort/);
  assert.deepEqual(aborted.violations, ['write after abort', 'end after abort']);
});

test('after the client left, writes are dropped, not refused', () => {
  const reply = new TestReply();
  reply.write('a');
  reply.clientGone();
  assert.equal(reply.write('b'), true);
  assert.equal(reply.bytes, 1);
  reply.abort();
  assert.equal(reply.closeAfter, true);
});

test('back-pressure: manual release, or a timer', async () => {
  const manual = new TestReply({ backPressure: 'manual' });
  assert.equal(manual.write('a'), false);
  assert.equal(manual.write('b'), false);
  assert.equal(manual.maxOutstandingWhileWaiting, 2);
  let drained = false;
  const waiting = manual.drained().then(() => (drained = true));
  await new Promise((resolve) => setTimeout(resolve, 5));
  assert.equal(drained, false);
  manual.release();
  await waiting;
  const timer = new TestReply({ backPressure: 'timer', keepChunks: 1 });
  timer.write('a');
  timer.write('b');
  await timer.drained();
  assert.equal(timer.writesRefused, 2);
  assert.equal(timer.text(), 'a', 'only the first chunk kept');
  assert.equal(timer.bytes, 2);
});
