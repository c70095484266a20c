/**
 * The WSGI gateway's rules apart from its processes (src/gateways/wsgi/): a request's states and
 * their transitions (job.ts), scheduling (scheduling.ts) and HTTP translation (response.ts). The
 * gateway itself is covered by test/integration/wsgi-gateway.test.ts and wsgi.test.ts.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { nextState, isSentToPython, type JobEvent, type JobState } from '../../src/gateways/wsgi/job.js';
import { afterCrash, maySend, PIPELINE, PIPELINE_BODY_MAX } from '../../src/gateways/wsgi/scheduling.js';
import { crashesAfterExit, MAX_RESTART_DELAY, restartDelay } from '../../src/gateways/python/supervisor.js';
import { frameBody, responseEnd, translateHead, type ResponseFraming } from '../../src/gateways/python/response.js';
import { encodeHead } from '../../src/gateways/python/pipe.js';
import type { ReplyChannel } from '../../src/http/reply-channel.js';
import type { Mongrel2Message } from '../../src/protocol/index.js';

const STATES: readonly JobState[] = ['queued', 'preparing', 'sent', 'head-sent', 'ended', 'failed', 'cancelled'];
const EVENTS: readonly JobEvent[] = ['take', 'send', 'requeue', 'head', 'end', 'fail', 'cancel'];

describe('job states', () => {
  test('the whole transition table', () => {
    const allowed: Record<string, JobState> = {
      'queued take': 'preparing',
      'preparing send': 'sent',
      'preparing requeue': 'queued',
      'sent requeue': 'queued',
      'sent head': 'head-sent',
      'queued end': 'ended',
      'preparing end': 'ended',
      'sent end': 'ended',
      'head-sent end': 'ended',
      'queued fail': 'failed',
      'preparing fail': 'failed',
      'sent fail': 'failed',
      'queued cancel': 'cancelled',
      'sent cancel': 'cancelled',
    };
    for (const state of STATES) {
      for (const event of EVENTS) {
        assert.equal(nextState(state, event), allowed[`${state} ${event}`], `${state} --${event}-->`);
      }
    }
  });

  test('ended, failed and cancelled are final', () => {
    for (const state of ['ended', 'failed', 'cancelled'] as const) {
      for (const event of EVENTS) assert.equal(nextState(state, event), undefined, `${state} --${event}-->`);
    }
  });

  test('an error page only before the head; a cancel while sent ahead only before the head', () => {
    assert.equal(nextState('head-sent', 'fail'), undefined);
    assert.equal(nextState('head-sent', 'cancel'), undefined);
    assert.equal(nextState('preparing', 'cancel'), undefined, 'an upload being measured: run() sees the abort');
  });

  test('a happy path and a retry after a crash', () => {
    const walk = (events: JobEvent[]): JobState | undefined =>
      events.reduce<JobState | undefined>((state, event) => (state === undefined ? undefined : nextState(state, event)), 'queued');
    assert.equal(walk(['take', 'send', 'head', 'end']), 'ended');
    assert.equal(walk(['take', 'send', 'requeue', 'take', 'send', 'head', 'end']), 'ended');
    assert.equal(walk(['take', 'send', 'fail']), 'failed');
  });

  test('in Python\'s hands once sent', () => {
    assert.deepEqual(
      STATES.filter(isSentToPython),
      ['sent', 'head-sent', 'ended', 'failed', 'cancelled'],
    );
  });
});

function request(body = 0, bodyFile?: string): { message: Mongrel2Message; bodyFile: string | undefined } {
  return {
    message: { kind: 'request', sender: 's', connId: 1, path: '/', headers: {}, body: Buffer.alloc(body) },
    bodyFile,
  };
}

describe('scheduling', () => {
  test('small inline bodies are sent ahead, up to PIPELINE, behind requests fully sent', () => {
    assert.equal(maySend(request(), []), true);
    assert.equal(maySend(request(10 * PIPELINE_BODY_MAX, '/tmp/up'), []), true, 'alone, anything goes');
    assert.equal(maySend(request(), ['sent']), true);
    assert.equal(maySend(request(PIPELINE_BODY_MAX), ['head-sent', 'sent']), true);
    assert.equal(maySend(request(PIPELINE_BODY_MAX + 1), ['sent']), false, 'a large body');
    assert.equal(maySend(request(0, '/tmp/up'), ['sent']), false, 'an upload');
    assert.equal(maySend(request(), ['preparing']), false, 'behind an upload being measured');
    assert.equal(maySend(request(), Array<JobState>(PIPELINE - 1).fill('sent')), true);
    assert.equal(maySend(request(), Array<JobState>(PIPELINE).fill('sent')), false);
  });

  test('with threads: anything goes while a thread is free, then PIPELINE - 1 more small ones', () => {
    const sent = (n: number) => Array<JobState>(n).fill('sent');
    assert.equal(maySend(request(0, '/tmp/up'), sent(3), PIPELINE, 4), true, 'an upload, a thread is free');
    assert.equal(maySend(request(PIPELINE_BODY_MAX + 1), sent(3), PIPELINE, 4), true, 'a large body, a thread is free');
    assert.equal(maySend(request(0, '/tmp/up'), sent(4), PIPELINE, 4), false, 'an upload waits for a free thread');
    assert.equal(maySend(request(), sent(4 + PIPELINE - 2), PIPELINE, 4), true);
    assert.equal(maySend(request(), sent(4 + PIPELINE - 1), PIPELINE, 4), false);
    assert.equal(maySend(request(), ['sent', 'preparing'], PIPELINE, 4), false, 'behind an upload being measured');
    assert.equal(maySend(request(), sent(1), 1, 1), false, '--wsgi-pipeline=1: only what a thread can start');
    assert.equal(maySend(request(), sent(1), 1, 2), true);
  });

  test('restarts back off exponentially while the process dies young', () => {
    assert.deepEqual([0, 1, 2, 3, 4].map(restartDelay), [0, 100, 200, 400, 800]);
    assert.equal(restartDelay(50), MAX_RESTART_DELAY);
    assert.equal(crashesAfterExit(3, 100), 4);
    assert.equal(crashesAfterExit(3, 60_000), 0);
  });

  test('after a crash: the running request is answered, the others retried or answered', () => {
    const jobs = (states: JobState[]) => states.map((state, index) => ({ state, index }));
    const inFlight = jobs(['head-sent', 'sent', 'cancelled', 'sent']);
    const retried = afterCrash(inFlight, true, false);
    assert.deepEqual(retried.running.map((j) => j.index), [0]);
    assert.deepEqual(retried.retry.map((j) => j.index), [1, 3]);
    assert.deepEqual(retried.answer, []);
    for (const [complete, closing] of [[false, false], [true, true]] as const) {
      const answered = afterCrash(inFlight, complete, closing);
      assert.deepEqual(answered.retry, []);
      assert.deepEqual(answered.answer.map((j) => j.index), [1, 3], 'never run twice');
    }
    assert.deepEqual(afterCrash(jobs(['cancelled']), true, false).running, []);
    assert.deepEqual(afterCrash([], true, false).running, []);
    const threaded = afterCrash(inFlight, true, false, 3);
    assert.deepEqual(threaded.running.map((j) => j.index), [0, 1], 'the first three may have run (one was cancelled)');
    assert.deepEqual(threaded.retry.map((j) => j.index), [3]);
  });
});

const reply = (method = 'GET', httpVersion = 'HTTP/1.1', keepAlive = true): ReplyChannel =>
  ({ method, httpVersion, keepAlive }) as ReplyChannel;

describe('HTTP translation', () => {
  test('a head with Content-Length is framed by length', () => {
    const { head, framing } = translateHead(reply(), encodeHead('200 OK', [['Content-Length', ' 5 ']]), '9.9');
    assert.match(head.toString('latin1'), /^HTTP\/1\.1 200 OK\r\n/);
    assert.deepEqual(framing, { framing: 'length', close: false, remaining: 5 });
  });

  test('an unknown length is chunked on HTTP/1.1 and closed on HTTP/1.0', () => {
    assert.equal(translateHead(reply(), encodeHead('200 OK', []), '9.9').framing.framing, 'chunked');
    const old = translateHead(reply('GET', 'HTTP/1.0', false), encodeHead('200 OK', []), '9.9').framing;
    assert.equal(old.framing, 'close');
    assert.equal(old.close, true);
  });

  test('unsafe heads are refused', () => {
    assert.throws(() => translateHead(reply(), encodeHead('200 OK', [['X-Bad', 'a\r\nb']]), '9.9'));
  });

  test('body framing: length cuts what exceeds it and warns once', () => {
    const framing: ResponseFraming = { framing: 'length', close: false, remaining: 5 };
    assert.deepEqual(frameBody(framing, Buffer.from('abc')), { parts: [Buffer.from('abc')], overflow: false });
    assert.deepEqual(frameBody(framing, Buffer.from('defg')), { parts: [Buffer.from('de')], overflow: true });
    assert.deepEqual(frameBody(framing, Buffer.from('hij')), { parts: [], overflow: false });
  });

  test('body framing: chunked, close, none', () => {
    const chunked = frameBody({ framing: 'chunked', close: false, remaining: 0 }, Buffer.from('hello'));
    assert.equal(chunked.parts.map((p) => p.toString()).join(''), '5\r\nhello\r\n');
    assert.deepEqual(frameBody({ framing: 'close', close: true, remaining: 0 }, Buffer.from('x')).parts, [Buffer.from('x')]);
    assert.deepEqual(frameBody({ framing: 'none', close: false, remaining: 0 }, Buffer.from('x')).parts, []);
  });

  test('the end: last chunk, close when short of Content-Length or framed by close', () => {
    assert.deepEqual(responseEnd({ framing: 'chunked', close: false, remaining: 0 }), { last: '0\r\n\r\n', close: false, missing: 0 });
    assert.deepEqual(responseEnd({ framing: 'length', close: false, remaining: 0 }), { last: undefined, close: false, missing: 0 });
    assert.deepEqual(responseEnd({ framing: 'length', close: false, remaining: 3 }), { last: undefined, close: true, missing: 3 });
    assert.deepEqual(responseEnd({ framing: 'length', close: false, remaining: -1 }), { last: undefined, close: false, missing: 0 });
    assert.deepEqual(responseEnd({ framing: 'close', close: false, remaining: 0 }), { last: undefined, close: true, missing: 0 });
    assert.deepEqual(responseEnd({ framing: 'none', close: true, remaining: 0 }), { last: undefined, close: true, missing: 0 });
  });
});
