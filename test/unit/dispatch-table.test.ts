/**
 * The master's dispatch table (src/dispatch/table.ts): pure logic, driven with fake frames and a
 * recording sink.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { DispatchTable, type AnswerStatus, type DispatchSink, type WorkerSlot } from '../../src/dispatch/table.js';
import { isControlFrame, isDisconnectFrame, isTimeoutCancel, timeoutCancelFrame } from '../../src/dispatch/mongrel2-frames.js';
import { parseMessage } from '../../src/protocol/index.js';
import {
  CONTROL_END,
  FrameBatch,
  FrameReader,
  RecordReader,
  ReportBuffer,
  REPORT_CREDIT,
  REPORT_DONE,
  REPORT_HANDLED,
  REPORT_STARTED,
  REPORT_PAUSE,
  REPORT_CAPACITY,
  REPORT_WAITING,
} from '../../src/dispatch/worker-stream.js';
import type { ProtocolError } from '../../src/protocol/index.js';

const SENDER = 'aaaa-1';

function req(connId: number, path = '/x', sender = SENDER): Buffer {
  return Buffer.from(`${sender} ${connId} ${path} 27:6:METHOD,3:GET,4:PATH,2:/x,}0:,`, 'latin1');
}
/** mongrel2's download credits message (download.flow_control=1). */
function credits(connId: number, bytes = 4096): Buffer {
  const headers = `6:METHOD,4:JSON,16:DOWNLOAD_CREDITS,${String(bytes).length}:${bytes},`;
  return Buffer.from(`${SENDER} ${connId} @* ${headers.length}:${headers}}18:{"type":"credits"},`, 'latin1');
}
function disconnect(connId: number, json = false): Buffer {
  const headers = json ? '17:{"METHOD":"JSON"},' : '16:6:METHOD,4:JSON,}';
  return Buffer.from(`${SENDER} ${connId} @* ${headers}21:{"type":"disconnect"},`, 'latin1');
}

type Event =
  | { kind: 'forward'; worker: number; server: number; frame: string }
  | { kind: 'end'; worker: number }
  | { kind: 'answer'; server: number; connId: number; status: AnswerStatus }
  | { kind: 'malformed'; code: string }
  | { kind: 'overflow' }
  | { kind: 'retireLimit'; worker: number };

class Recorder implements DispatchSink {
  events: Event[] = [];
  forward(worker: WorkerSlot, server: number, frame: Buffer): void {
    this.events.push({ kind: 'forward', worker: worker.id, server, frame: frame.toString('latin1') });
  }
  end(worker: WorkerSlot): void {
    this.events.push({ kind: 'end', worker: worker.id });
  }
  answer(server: number, _sender: string, connId: number, status: AnswerStatus): void {
    this.events.push({ kind: 'answer', server, connId, status });
  }
  malformed(_server: number, _frame: Buffer, error: ProtocolError): void {
    this.events.push({ kind: 'malformed', code: error.code });
  }
  overflow(): void {
    this.events.push({ kind: 'overflow' });
  }
  retireLimit(worker: WorkerSlot): void {
    this.events.push({ kind: 'retireLimit', worker: worker.id });
  }
  take(): Event[] {
    const e = this.events;
    this.events = [];
    return e;
  }
  forwardedTo(): number[] {
    return this.take().flatMap((e) => (e.kind === 'forward' ? [e.worker] : []));
  }
}

function records(...recs: Array<[number, number, number]>): Buffer {
  const b = new ReportBuffer(1);
  for (const [k, s, v] of recs) b.push(k, s, v);
  return b.take();
}
const credit = (n: number) => records([REPORT_CREDIT, 0, n]);
const done = (conn: number, server = 0) => records([REPORT_DONE, server, conn]);
const started = (conn: number, server = 0) => records([REPORT_STARTED, server, conn]);
const handled = (conn: number, server = 0) => records([REPORT_HANDLED, server, conn]);

function setup(credits: number[], maxQueued = 100): { table: DispatchTable; sink: Recorder } {
  const sink = new Recorder();
  const table = new DispatchTable(sink, { maxQueued });
  credits.forEach((c, i) => {
    table.addWorker(i + 1);
    table.report(i + 1, credit(c), 0);
  });
  return { table, sink };
}

describe('dispatch table', () => {
  test('new connections go to the worker with the most credit; ties to the least used', () => {
    const { table, sink } = setup([2, 3]);
    table.dispatch(0, req(1), 0); // w2 (3 > 2)
    table.dispatch(0, req(2), 0); // tie 2/2 → w1 (forwarded 0 < 1)
    table.dispatch(0, req(3), 0); // w1 1, w2 2 → w2
    assert.deepEqual(sink.forwardedTo(), [2, 1, 2]);
    assert.equal(table.workers.get(1)!.credit, 1);
    assert.equal(table.workers.get(2)!.credit, 1);
    assert.equal(table.inFlight, 3);
  });

  test('frames are forwarded untouched, with their server index', () => {
    const { table, sink } = setup([5]);
    const f = req(9, '/untouched');
    table.dispatch(3, f, 0);
    const [e] = sink.take();
    assert.deepEqual(e, { kind: 'forward', worker: 1, server: 3, frame: f.toString('latin1') });
  });

  test('sticky: a connection stays with its worker even when another has more credit', () => {
    const { table, sink } = setup([1, 10]);
    table.dispatch(0, req(7), 0);
    assert.deepEqual(sink.forwardedTo(), [2]);
    table.report(2, credit(-0), 0);
    table.dispatch(0, req(7), 0);
    table.dispatch(0, req(7), 0);
    assert.deepEqual(sink.forwardedTo(), [2, 2]);
    // Same connection id on another server is another connection.
    table.report(1, credit(20), 0);
    table.dispatch(1, req(7), 0);
    assert.deepEqual(sink.forwardedTo(), [1]);
  });

  test('a holder without credit: the connection waits for it (order kept), others are not blocked', () => {
    const { table, sink } = setup([0, 5]);
    table.dispatch(0, req(1), 0); // w2
    // Make w2 run out of credit: 4 more connections.
    for (let c = 10; c < 14; c++) table.dispatch(0, req(c), 0);
    assert.equal(table.workers.get(2)!.credit, 0);
    table.report(1, credit(1), 0);
    sink.take();
    table.dispatch(0, req(1, '/second'), 0); // parked at w2
    table.dispatch(0, req(20), 0); // new connection → w1
    assert.deepEqual(sink.forwardedTo(), [1]);
    assert.equal(table.queued, 1);
    table.report(2, done(10), 0); // credit back → parked frame goes out
    const ev = sink.take();
    assert.equal(ev.length, 1);
    assert.equal(ev[0]!.kind === 'forward' && ev[0]!.worker, 2);
    assert.match(ev[0]!.kind === 'forward' ? ev[0]!.frame : '', /\/second/);
    assert.equal(table.queued, 0);
  });

  test('no credit anywhere: messages wait in the master, in order, and flow as credit returns', () => {
    const { table, sink } = setup([1]);
    table.dispatch(0, req(1), 0);
    table.dispatch(0, req(2), 0);
    table.dispatch(0, req(3), 0);
    assert.deepEqual(sink.forwardedTo(), [1]);
    assert.equal(table.queued, 2);
    table.report(1, done(1), 0);
    let ev = sink.take();
    assert.equal(ev.length, 1);
    assert.match(ev[0]!.kind === 'forward' ? ev[0]!.frame : '', / 2 /);
    table.report(1, credit(5), 0);
    ev = sink.take();
    assert.equal(ev.length, 1);
    assert.match(ev[0]!.kind === 'forward' ? ev[0]!.frame : '', / 3 /);
    assert.equal(table.queued, 0);
    assert.equal(table.counters.queuedTotal, 2);
  });

  test('the wait queue is bounded: beyond it, 503 + close', () => {
    const { table, sink } = setup([1], 2);
    for (let c = 1; c <= 4; c++) table.dispatch(0, req(c), 0);
    const ev = sink.take();
    assert.deepEqual(
      ev.filter((e) => e.kind !== 'forward'),
      [{ kind: 'overflow' }, { kind: 'answer', server: 0, connId: 4, status: 503 }],
    );
    assert.equal(table.counters.answered503, 1);
  });

  test('disconnect goes to the holder, then the connection is forgotten', () => {
    const { table, sink } = setup([5, 5]);
    table.dispatch(0, req(4), 0);
    const [holder] = sink.forwardedTo();
    table.report(holder!, started(4), 0);
    table.report(holder!, done(4), 0);
    table.dispatch(0, disconnect(4), 0);
    assert.deepEqual(sink.forwardedTo(), [holder]);
    assert.ok(table.conns.has(4)); // until the worker reports it done
    table.report(holder!, done(4), 0);
    assert.equal(table.conns.size, 0);
    assert.equal(table.workers.get(holder!)!.credit, 5);
  });

  test('disconnect for a connection nobody holds is dropped', () => {
    const { table, sink } = setup([5]);
    table.dispatch(0, disconnect(99, true), 0);
    assert.deepEqual(sink.take(), []);
    assert.equal(table.counters.orphanDisconnects, 1);
  });

  test('malformed frames are dropped and reported', () => {
    const { table, sink } = setup([5]);
    table.dispatch(0, Buffer.from('bad_sender 1 / 0:,0:,'), 0);
    table.dispatch(0, Buffer.from('nospace'), 0);
    assert.deepEqual(
      sink.take().map((e) => e.kind),
      ['malformed', 'malformed'],
    );
    assert.equal(table.counters.malformed, 2);
  });

  test('worker gone: not started → 502 + close, started → close, idle sticky → re-routed', () => {
    const { table, sink } = setup([3, 0]);
    table.dispatch(0, req(1), 0);
    table.dispatch(0, req(2), 0);
    table.dispatch(0, req(3), 0);
    table.report(1, started(2), 0);
    table.report(1, started(3), 0);
    table.report(1, done(3), 0); // conn 3: idle, still sticky to w1
    sink.take();
    table.dispatch(0, req(3, '/again'), 0); // w1 has 1 credit → forwarded
    table.report(1, started(3), 0);
    table.report(1, done(3), 0);
    table.report(1, records([REPORT_CREDIT, 0, 0]), 0);
    sink.take();
    table.workerGone(1, 0);
    const ev = sink.take();
    assert.deepEqual(
      ev.filter((e) => e.kind === 'answer'),
      [
        { kind: 'answer', server: 0, connId: 1, status: 502 },
        { kind: 'answer', server: 0, connId: 2, status: 0 },
      ],
    );
    assert.equal(table.counters.answered502, 1);
    assert.equal(table.counters.closed, 1);
    assert.equal(table.conns.size, 0);
    // Conn 3 is no longer held: its next request goes to the worker that has credit.
    table.report(2, credit(1), 0);
    table.dispatch(0, req(3), 0);
    assert.deepEqual(sink.forwardedTo(), [2]);
  });

  test('abrupt death: connections reported done recently get 502 + close too', () => {
    const { table, sink } = setup([5]);
    table.dispatch(0, req(1), 0);
    table.dispatch(0, req(2), 0);
    table.dispatch(0, req(3), 0);
    table.report(1, records([REPORT_STARTED, 0, 1], [REPORT_DONE, 0, 1]), 100); // long ago
    table.report(1, records([REPORT_STARTED, 0, 2], [REPORT_DONE, 0, 2]), 900); // recent
    sink.take();
    table.workerGone(1, 1000, 800);
    assert.deepEqual(
      sink
        .take()
        .filter((e) => e.kind === 'answer')
        .sort((a, b) => (a.kind === 'answer' && b.kind === 'answer' ? a.connId - b.connId : 0)),
      [
        { kind: 'answer', server: 0, connId: 2, status: 502 },
        { kind: 'answer', server: 0, connId: 3, status: 502 },
      ],
    );
    assert.equal(table.counters.answered502, 2);
  });

  test('retiring: new connections prefer other workers, sticky ones stay, the bound is reported once', () => {
    const { table, sink } = setup([10, 2]);
    table.dispatch(0, req(1), 0); // w1 (most credit)
    table.retire(1, 2);
    table.dispatch(0, req(2), 0); // new: w2 although w1 has more credit
    table.dispatch(0, req(1, '/sticky'), 0); // held by w1: stays (order, state)
    assert.deepEqual(sink.forwardedTo(), [1, 2, 1]);
    table.dispatch(0, req(3), 0); // w2 (1 credit left)
    table.dispatch(0, req(4), 0); // w2 has none: the retiring one keeps capacity up
    assert.deepEqual(sink.take(), [
      { kind: 'forward', worker: 2, server: 0, frame: req(3).toString('latin1') },
      { kind: 'forward', worker: 1, server: 0, frame: req(4).toString('latin1') },
      { kind: 'retireLimit', worker: 1 }, // its 2nd message since retire(), reported after the forward
    ]);
    table.dispatch(0, req(5), 0); // no credit at w2, w1 still accepting until drained
    assert.deepEqual(sink.take().map((e) => e.kind), ['forward'], 'reported once');
    table.unretire(1);
    table.report(2, credit(5), 0);
    table.dispatch(0, req(6), 0); // back to "most credit"
    assert.deepEqual(sink.forwardedTo(), [1]);
  });

  test('one flooding server cannot take the wait queue from another; servers are served in turn', () => {
    const sink = new Recorder();
    const table = new DispatchTable(sink, { maxQueued: 10, servers: 2 });
    table.addWorker(1);
    table.report(1, credit(0), 0);
    for (let c = 1; c <= 20; c++) table.dispatch(0, req(c), 0); // server 0 floods: 5 wait, 15 refused
    assert.equal(table.counters.answered503, 15);
    for (let c = 1; c <= 3; c++) table.dispatch(1, req(100 + c), 0); // server 1 still gets in
    assert.equal(table.counters.answered503, 15);
    assert.equal(table.queued, 8);
    sink.take();
    table.report(1, credit(6), 0);
    const order = sink.take().flatMap((e) => (e.kind === 'forward' ? [`${e.server}:${/ (\d+) /.exec(e.frame)![1]}`] : []));
    assert.deepEqual(order, ['0:1', '1:101', '0:2', '1:102', '0:3', '1:103']);
    assert.equal(table.queued, 2);
  });

  test('the connection table is bounded: idle connections are forgotten oldest first, busy ones kept', () => {
    const sink = new Recorder();
    const table = new DispatchTable(sink, { maxQueued: 100, maxConns: 10 });
    table.addWorker(1);
    table.report(1, credit(1000), 0);
    table.dispatch(0, req(1), 0); // stays busy
    for (let c = 2; c <= 10; c++) {
      table.dispatch(0, req(c), 0);
      table.report(1, done(c), 0); // idle, never disconnected
    }
    assert.equal(table.conns.size, 10);
    table.dispatch(0, req(11), 0);
    assert.ok(table.conns.size <= 10, `${table.conns.size} connections`);
    assert.ok(table.conns.has(1), 'the busy one is kept');
    assert.ok(table.conns.has(11) && !table.conns.has(2), 'the oldest idle one went');
    assert.equal(table.counters.pruned, 1, "down to 90%, then the new one");
  });

  test('frozen worker: replies reported done before it went silent get 502 + close after its drain', () => {
    // The worker reports conns 1 and 2 done, then freezes (SIGSTOP): nothing more is heard from
    // it. Conn 3's request times out (504), which drains the worker: idle conns 1 and 2 are let go
    // of. Long after, it is killed; the caller passes "last heard − window" as suspectSince.
    const { table, sink } = setup([5, 5]);
    for (const c of [1, 2, 3, 4]) table.dispatch(0, req(c), 1000);
    // w1 has conns 1 and 3, w2 conns 2 and 4 (most credit first, ties: least sent).
    table.report(1, records([REPORT_STARTED, 0, 1], [REPORT_DONE, 0, 1]), 1000); // long before the freeze
    table.report(2, records([REPORT_STARTED, 0, 2], [REPORT_DONE, 0, 2]), 1000);
    table.dispatch(0, req(1, '/next'), 5000);
    table.report(1, records([REPORT_STARTED, 0, 1], [REPORT_DONE, 0, 1]), 9000); // just before
    sink.take();
    assert.deepEqual([...table.expire(12_000, 2000)], [1, 2]);
    sink.take(); // 504 for conns 3 and 4
    table.drain(1, 12_000);
    assert.equal(table.conns.has(1), false, 'drain let go of the idle connection');
    const lastHeard = 9000;
    table.workerGone(1, 20_000, lastHeard - 250);
    assert.deepEqual(
      sink.take().filter((e) => e.kind === 'answer'),
      [{ kind: 'answer', server: 0, connId: 1, status: 502 }],
      'conn 1 answered; conn 3 had its 504 already',
    );
  });

  test('suspect replies: not for released, closed or moved connections, nor after a clean exit', () => {
    const { table, sink } = setup([5, 0]);
    for (const c of [1, 2, 3]) table.dispatch(0, req(c), 0);
    table.report(1, records([REPORT_DONE, 0, 1], [REPORT_DONE, 0, 2], [REPORT_DONE, 0, 3]), 100);
    table.dispatch(0, disconnect(1), 100); // client gone: released
    table.report(1, done(1), 100);
    table.drain(1, 100); // conns 2 and 3 let go of
    table.report(2, credit(5), 100);
    table.dispatch(0, req(3, '/again'), 100); // conn 3 moved to w2: the client had its reply
    sink.take();
    table.workerGone(1, 200, 0);
    assert.deepEqual(
      sink.take().filter((e) => e.kind === 'answer'),
      [{ kind: 'answer', server: 0, connId: 2, status: 502 }],
    );
    // A clean exit (drained, flushed): nothing.
    const b = setup([5]);
    b.table.dispatch(0, req(7), 0);
    b.table.report(1, done(7), 10);
    b.sink.take();
    b.table.workerGone(1, 20);
    assert.deepEqual(b.sink.take(), []);
  });

  test('messages parked for a worker that dies are re-routed', () => {
    const { table, sink } = setup([1, 0]);
    table.dispatch(0, req(1), 0);
    table.report(1, started(1), 0);
    table.report(1, done(1), 0);
    table.report(1, records([REPORT_CREDIT, 0, 0]), 0);
    table.dispatch(0, req(5), 0); // w1 takes it (1 credit)
    table.dispatch(0, req(1, '/parked'), 0); // w1 has no credit → parked
    sink.take();
    assert.equal(table.queued, 1);
    table.report(2, credit(3), 0);
    table.workerGone(1, 0);
    const ev = sink.take();
    assert.deepEqual(ev[0], { kind: 'answer', server: 0, connId: 5, status: 502 });
    assert.equal(ev[1]!.kind === 'forward' && ev[1]!.worker, 2);
    assert.match(ev[1]!.kind === 'forward' ? ev[1]!.frame : '', /\/parked/);
  });

  test('timeout: a request not started in time → 504 + close, its worker named', () => {
    const { table, sink } = setup([5, 5]);
    table.dispatch(0, req(1), 1000);
    table.dispatch(0, req(2), 1000);
    const [w1, w2] = sink.forwardedTo();
    table.report(w2!, started(2), 1500);
    assert.deepEqual([...table.expire(2500, 2000)], []);
    const culprits = table.expire(3000, 2000);
    assert.deepEqual([...culprits], [w1]);
    assert.deepEqual(sink.take(), [
      { kind: 'answer', server: 0, connId: 1, status: 504 },
      // Its worker is told to cancel it, as if the client had left.
      { kind: 'forward', worker: w1, server: 0, frame: timeoutCancelFrame(SENDER, 1).toString('latin1') },
    ]);
    assert.equal(table.counters.answered504, 1);
    // Started ones never time out.
    assert.deepEqual([...table.expire(100_000, 2000)], []);
  });

  test('timeout clock of a pipelined request starts when it becomes the head of its line', () => {
    const { table } = setup([5]);
    table.dispatch(0, req(1), 0);
    table.dispatch(0, req(1), 500);
    table.report(1, started(1), 1800);
    table.report(1, done(1), 1900);
    assert.equal(table.expire(2500, 2000).size, 0); // second became head at 1900
    assert.equal(table.expire(3900, 2000).size, 1);
  });

  test('drain: end marker, idle connections released, busy ones finish there first', () => {
    const { table, sink } = setup([5, 5]);
    table.dispatch(0, req(1), 0); // w1
    table.dispatch(0, req(2), 0); // w2
    table.dispatch(0, req(3), 0); // w1
    table.report(1, started(3), 0);
    table.report(1, done(3), 0); // conn 3 idle on w1
    sink.take();
    table.drain(1, 0);
    assert.deepEqual(sink.take(), [{ kind: 'end', worker: 1 }]);
    // Idle connection 3 moves to w2; busy connection 1 waits for w1 to finish.
    table.dispatch(0, req(3), 0);
    table.dispatch(0, req(1, '/next'), 0);
    table.dispatch(0, req(9), 0);
    assert.deepEqual(sink.forwardedTo(), [2, 2]);
    assert.equal(table.queued, 1);
    table.report(1, started(1), 0);
    table.report(1, done(1), 0);
    const ev = sink.take();
    assert.equal(ev.length, 1);
    assert.equal(ev[0]!.kind === 'forward' && ev[0]!.worker, 2);
    assert.match(ev[0]!.kind === 'forward' ? ev[0]!.frame : '', /\/next/);
    assert.equal(table.queued, 0);
  });

  test('a pause report is returned to the caller', () => {
    const { table } = setup([5]);
    assert.equal(table.report(1, records([REPORT_PAUSE, 0, 0]), 0), true);
    assert.equal(table.report(1, done(1), 0), false);
    assert.equal(table.report(42, records([REPORT_PAUSE, 0, 0]), 0), false);
  });

  test('reports for unknown connections still return credit', () => {
    const { table } = setup([1]);
    table.dispatch(0, req(1), 0);
    table.report(1, records([REPORT_STARTED, 0, 77], [REPORT_DONE, 0, 77]), 0);
    assert.equal(table.workers.get(1)!.credit, 1);
  });

  test('sweep forgets connections idle for long', () => {
    const { table } = setup([5]);
    table.dispatch(0, req(1), 0);
    table.report(1, done(1), 10);
    table.dispatch(0, req(2), 0);
    assert.equal(table.sweep(1000, 500), 1);
    assert.deepEqual([...table.conns.keys()], [2]);
  });

  test("a connection whose message the worker dropped as malformed ('X') is forgotten once settled", () => {
    const { table } = setup([5]);
    table.dispatch(0, req(1), 0);
    table.dispatch(0, req(1), 0);
    table.dispatch(0, req(2), 0);
    table.report(1, records([0x58, 0, 1], [0x44, 0, 1]), 10);
    assert.deepEqual([...table.conns.keys()], [1, 2], 'kept while a message is still in flight on it');
    table.report(1, done(1), 20);
    table.report(1, done(2), 20);
    assert.deepEqual([...table.conns.keys()], [2], 'forgotten once settled; an ordinary connection stays');
  });
});

describe('dispatch frames and wire', () => {
  test('isDisconnectFrame: tnetstring and JSON handlers', () => {
    assert.equal(isDisconnectFrame(disconnect(1)), true);
    assert.equal(isDisconnectFrame(disconnect(1, true)), true);
    assert.equal(isDisconnectFrame(Buffer.from(`${SENDER} 1 @* 17:{"METHOD":"JSON"},18:{"type":"credits"},`)), false);
    // A request whose body happens to end like a disconnect is not one.
    assert.equal(isDisconnectFrame(Buffer.from(`${SENDER} 1 /x 2:{},21:{"type":"disconnect"},`)), false);
    assert.equal(isDisconnectFrame(req(1)), false);
    assert.equal(isDisconnectFrame(Buffer.alloc(0)), false);
  });

  test('stream frames: batch → reader round-trip, however the stream is cut', () => {
    const big = Buffer.alloc(40_000, 0x61);
    const frames: Array<[number, Buffer]> = [
      [0, req(1)],
      [3, Buffer.from('x')],
      [255, big],
      [1, req(2)],
      [0, big.subarray(0, 20_000)],
      [2, req(3)],
    ];
    const batch = new FrameBatch();
    for (const [server, frame] of frames.slice(0, 3)) batch.push(server, frame);
    batch.control(CONTROL_END);
    for (const [server, frame] of frames.slice(3)) batch.push(server, frame);
    assert.equal(batch.count, 7);
    const chunks = batch.take();
    assert.equal(batch.empty, true);
    // Big frames are written as they are, not copied.
    assert.ok(chunks.includes(big));
    const stream = Buffer.concat(chunks);
    assert.equal(stream.length, frames.reduce((n, [, f]) => n + 5 + f.length, 5));
    const expected = [...frames.slice(0, 3).map(([s, f]) => `${s}:${f.toString('latin1')}`), 'E', ...frames.slice(3).map(([s, f]) => `${s}:${f.toString('latin1')}`)];
    for (const cut of [1, 2, 3, 4, 5, 6, 7, 13, 1000, 65536, stream.length]) {
      const got: string[] = [];
      const reader = new FrameReader(
        (frame, server) => got.push(`${server}:${frame.toString('latin1')}`),
        (kind) => got.push(kind === CONTROL_END ? 'E' : `?${kind}`),
      );
      for (let o = 0; o < stream.length; o += cut) reader.push(stream.subarray(o, o + cut));
      assert.deepEqual(got, expected, `cut ${cut}`);
    }
    // A frame whole in one chunk is a view of it (no copy).
    let view: Buffer | undefined;
    new FrameReader((f) => (view ??= f), () => {}).push(stream);
    assert.equal(view!.buffer, stream.buffer);
    assert.throws(() => batch.push(256, req(1)), RangeError);
  });

  test('report records: split anywhere', () => {
    const recs = records([REPORT_CREDIT, 0, 100], [REPORT_STARTED, 1, 7], [REPORT_DONE, 1, 7], [REPORT_PAUSE, 0, 0], [REPORT_DONE, 200, 4294967295]);
    for (const cut of [1, 2, 5, 6, 7, 11, 12, 30]) {
      const got: Buffer[] = [];
      const reader = new RecordReader((r) => got.push(Buffer.from(r)));
      for (let o = 0; o < recs.length; o += cut) reader.push(recs.subarray(o, o + cut));
      const all = Buffer.concat(got);
      assert.ok(got.every((g) => g.length % 6 === 0), `cut ${cut}`);
      assert.deepEqual(all, recs, `cut ${cut}`);
    }
  });

  test('report buffer grows and resets', () => {
    const b = new ReportBuffer(1);
    for (let i = 0; i < 100; i++) b.push(REPORT_DONE, i % 3, i * 1000003);
    const out = b.take();
    assert.equal(out.length, 600);
    assert.equal(b.length, 0);
    assert.equal(out[6 * 99], REPORT_DONE);
    assert.equal(out[6 * 99 + 1], 0);
    assert.equal(out.readUInt32BE(6 * 99 + 2), 99 * 1000003);
  });
});

describe('dispatch table: workers with a bound (WSGI --threads)', () => {
  /** Workers that run `capacity` at once and hold `waiting` more; stall guard `stallMs`. */
  function bounded(workers: number, capacity: number, waiting: number, stallMs = 50): { table: DispatchTable; sink: Recorder } {
    const sink = new Recorder();
    const table = new DispatchTable(sink, { maxQueued: 100, stallMs });
    for (let id = 1; id <= workers; id++) {
      table.addWorker(id);
      table.report(id, records([REPORT_CAPACITY, 0, capacity], [REPORT_WAITING, 0, waiting], [REPORT_CREDIT, 0, 100]), 0);
    }
    return { table, sink };
  }

  test('a new connection goes to a worker that can start it, never behind a full one', () => {
    const { table, sink } = bounded(2, 1, 7);
    table.dispatch(0, req(1, '/slow'), 0);
    const slowWorker = sink.forwardedTo()[0]!;
    const other = slowWorker === 1 ? 2 : 1;
    // Sequential fast requests on new connections, the slow one still running: all to the other.
    for (let conn = 2; conn < 12; conn++) {
      table.dispatch(0, req(conn), 10 + conn);
      assert.deepEqual(sink.forwardedTo(), [other], `request on connection ${conn}`);
      table.report(other, done(conn), 10 + conn);
    }
    // More at once than there are free threads: pipelined on the worker that makes progress
    // (within its waiting room), none behind the stalled slow one.
    for (let conn = 20; conn < 28; conn++) table.dispatch(0, req(conn), 100);
    assert.deepEqual(sink.forwardedTo(), Array(8).fill(other));
    table.dispatch(0, req(28), 100);
    assert.deepEqual(sink.forwardedTo(), [], 'no room left on the other: waits in the master');
    assert.equal(table.queued, 1);
    table.report(other, done(20), 101);
    assert.deepEqual(sink.forwardedTo(), [other]);
  });

  test('the most free threads first; ties shared', () => {
    const { table, sink } = bounded(2, 3, 0);
    for (let conn = 1; conn <= 6; conn++) table.dispatch(0, req(conn), 0);
    assert.deepEqual(sink.forwardedTo(), [1, 2, 1, 2, 1, 2]);
    table.dispatch(0, req(7), 0);
    assert.deepEqual(sink.forwardedTo(), [], 'no waiting room: the master holds it');
    table.report(2, done(2), 1);
    assert.deepEqual(sink.forwardedTo(), [2], 'to the first worker with a free thread');
  });

  test('pipelining while full: only to a worker that made progress within stallMs', () => {
    const { table, sink } = bounded(1, 1, 7, 50);
    table.dispatch(0, req(1), 1000);
    table.dispatch(0, req(2), 1010);
    assert.deepEqual(sink.forwardedTo(), [1, 1], 'became full 10 ms ago: still flowing');
    table.dispatch(0, req(3), 1060);
    assert.deepEqual(sink.forwardedTo(), [], 'no progress for 50 ms: held in the master');
    table.report(1, done(1), 2000);
    assert.deepEqual(sink.forwardedTo(), [1], 'progress: the held one goes');
  });

  test('pipelining while all are full: the worker with the most recent progress first', () => {
    const { table, sink } = bounded(2, 1, 7, 50);
    table.dispatch(0, req(1, '/slow'), 1000);
    const slowWorker = sink.forwardedTo()[0]!;
    const other = slowWorker === 1 ? 2 : 1;
    table.dispatch(0, req(2), 1001);
    assert.deepEqual(sink.forwardedTo(), [other]);
    // Both full, neither stalled yet: the one that became full last, then the one that reported last.
    table.dispatch(0, req(3), 1002);
    assert.deepEqual(sink.forwardedTo(), [other]);
    table.report(slowWorker, done(1), 1003);
    table.dispatch(0, req(4), 1003);
    assert.deepEqual(sink.forwardedTo(), [slowWorker], 'free again: it can start it');
  });

  test('keep-alive traffic keeping a worker full does not starve a new connection: after holdMs it goes anyway', () => {
    const sink = new Recorder();
    const table = new DispatchTable(sink, { maxQueued: 100, stallMs: 50, holdMs: 20 });
    table.addWorker(1);
    table.report(1, records([REPORT_CAPACITY, 0, 1], [REPORT_WAITING, 0, 1], [REPORT_CREDIT, 0, 100]), 0);
    table.dispatch(0, req(1), 0);
    table.dispatch(0, req(2), 0);
    table.dispatch(0, req(1, '/pipelined'), 0);
    assert.deepEqual(sink.forwardedTo(), [1, 1, 1], 'one running, one waiting, one sticky beyond the room');
    table.dispatch(0, req(3), 1);
    assert.deepEqual(sink.forwardedTo(), [], 'a new connection waits in the master');
    // The two held connections send their next requests as soon as they are answered (sticky),
    // so the worker never drops below its room.
    let now = 2;
    for (const conn of [1, 2, 1, 2]) {
      table.report(1, done(conn), now);
      table.dispatch(0, req(conn, '/next'), now);
      now += 5;
    }
    assert.deepEqual(sink.forwardedTo(), [1, 1, 1, 1], 'only the sticky ones so far');
    assert.equal(table.queued, 1);
    table.report(1, done(1), 25);
    assert.deepEqual(sink.forwardedTo(), [1], 'waited 24 ms ≥ holdMs: sent to the worker making progress');
    assert.equal(table.queued, 0);
  });

  test('a new connection behind waiting ones keeps its place in line', () => {
    const { table, sink } = bounded(1, 1, 0);
    table.dispatch(0, req(1), 0);
    table.dispatch(0, req(2), 0);
    table.dispatch(0, req(3), 0);
    assert.deepEqual(sink.forwardedTo(), [1]);
    table.report(1, done(1), 1);
    assert.deepEqual(sink.take(), [{ kind: 'forward', worker: 1, server: 0, frame: req(2).toString('latin1') }]);
  });

  test('sticky messages (a keep-alive connection, a disconnect) still reach a full worker', () => {
    const { table, sink } = bounded(2, 1, 0);
    table.dispatch(0, req(1), 0);
    const holder = sink.forwardedTo()[0]!;
    table.dispatch(0, req(1, '/again'), 1);
    table.dispatch(0, disconnect(1), 2);
    assert.deepEqual(sink.forwardedTo(), [holder, holder]);
  });

  test('workers without a bound are routed by credit, as before', () => {
    const { table, sink } = setup([3, 5]);
    table.dispatch(0, req(1), 0);
    table.dispatch(0, req(2), 0);
    table.dispatch(0, req(3), 0);
    assert.deepEqual(sink.forwardedTo(), [2, 2, 1]);
  });
});

describe('control messages are not requests', () => {
  test('frames: credits and disconnects are control frames, requests are not; the synthesized disconnect parses as one', () => {
    assert.equal(isControlFrame(credits(3)), true);
    assert.equal(isControlFrame(disconnect(3)), true);
    assert.equal(isControlFrame(req(3)), false);
    assert.equal(isDisconnectFrame(credits(3)), false);
    const frame = timeoutCancelFrame(SENDER, 42);
    assert.equal(isControlFrame(frame), true);
    const message = parseMessage(frame);
    assert.equal(message.kind, 'disconnect', "the worker's parser takes it for a disconnect");
    assert.equal(message.connId, 42);
    assert.equal(isTimeoutCancel(message.body), true);
    assert.equal(isTimeoutCancel(parseMessage(disconnect(42)).body), false, "mongrel2's own is not");
    assert.equal(parseMessage(credits(3)).kind, 'credits');
  });

  test('a credits message on a streaming connection leaves its response started: its worker dying closes it, never a 502', () => {
    const { table, sink } = setup([5]);
    table.dispatch(0, req(1, '/stream'), 0);
    table.report(1, started(1), 10);
    for (let i = 0; i < 3; i++) {
      table.dispatch(0, credits(1), 20 + i);
      table.report(1, handled(1), 21 + i);
    }
    table.dispatch(0, credits(1), 30); // one still in flight when it dies
    sink.take();
    table.workerGone(1, 40, 0);
    assert.deepEqual(sink.take(), [{ kind: 'answer', server: 0, connId: 1, status: 0 }]);
    assert.equal(table.counters.answered502, 0);
  });

  test('credits never time out, and a streaming response is never cut by the timeout', () => {
    const { table, sink } = setup([5]);
    table.dispatch(0, req(1, '/stream'), 0);
    table.report(1, started(1), 10);
    table.dispatch(0, credits(1), 1000); // its 'N' is slow to come
    assert.deepEqual([...table.expire(100_000, 2000)], []);
    table.report(1, handled(1), 100_000);
    table.dispatch(0, credits(1), 200_000);
    table.report(1, handled(1), 200_001);
    assert.deepEqual([...table.expire(900_000, 2000)], []);
    assert.deepEqual(sink.take().filter((e) => e.kind === 'answer'), []);
    // Its end is still the request's end.
    table.report(1, done(1), 900_001);
    assert.equal(table.conns.get(1)?.outstanding, 0);
  });

  test('a credits message left on an idle keep-alive connection gets no answer when the worker dies', () => {
    const { table, sink } = setup([5]);
    table.dispatch(0, req(1), 0);
    table.report(1, records([REPORT_STARTED, 0, 1], [REPORT_DONE, 0, 1]), 10);
    table.dispatch(0, credits(1), 5000);
    sink.take();
    table.workerGone(1, 6000, Infinity);
    assert.deepEqual(sink.take(), []);
  });

  test('a WebSocket frame (reported N) does not end the handshake\'s started response', () => {
    const { table, sink } = setup([5]);
    table.dispatch(0, req(1, '/ws'), 0);
    table.report(1, started(1), 10); // 101 sent; the session lasts
    table.dispatch(0, req(1, '/ws'), 20); // a frame: the table cannot tell it from a request
    table.report(1, handled(1), 21);
    assert.deepEqual([...table.expire(100_000, 2000)], []);
    sink.take();
    table.workerGone(1, 100_001, 0);
    assert.deepEqual(sink.take(), [{ kind: 'answer', server: 0, connId: 1, status: 0 }]);
  });

  test('a pipelined request behind a long stream: its clock starts when the stream ends', () => {
    const { table, sink } = setup([5]);
    table.dispatch(0, req(1, '/stream'), 0);
    table.report(1, started(1), 10);
    table.dispatch(0, req(1, '/next'), 20);
    assert.deepEqual([...table.expire(60_000, 2000)], [], 'the stream is not cut');
    table.report(1, done(1), 60_000);
    assert.deepEqual([...table.expire(61_999, 2000)], []);
    assert.deepEqual([...table.expire(62_000, 2000)], [1]);
    assert.deepEqual(sink.take().filter((e) => e.kind === 'answer'), [{ kind: 'answer', server: 0, connId: 1, status: 504 }]);
  });

  test('a timed-out request is cancelled at its worker: ended → forgotten, still running after the grace → stuck() names the worker once', () => {
    const { table, sink } = setup([5]);
    table.dispatch(0, req(1, '/hang'), 0);
    table.dispatch(0, req(2, '/hang'), 0);
    table.dispatch(0, req(3, '/stream'), 0);
    table.report(1, started(3), 10);
    sink.take();
    assert.deepEqual([...table.expire(2000, 2000)], [1]);
    const ev = sink.take();
    assert.equal(ev.filter((e) => e.kind === 'answer').length, 2);
    assert.equal(ev.filter((e) => e.kind === 'forward').length, 2, 'a disconnect for each');
    assert.deepEqual([...table.expire(10_000, 2000)], [], 'answered once');
    // Conn 1's task is cancelled (ASGI): its disconnect handled, its request done.
    table.report(1, records([REPORT_HANDLED, 0, 1], [REPORT_DONE, 0, 1]), 2010);
    assert.equal(table.conns.has(1), false);
    // Conn 2's disconnect is handled but the request runs on (a WSGI thread).
    table.report(1, handled(2), 2010);
    assert.deepEqual([...table.stuck(2000 + 1999)], []);
    assert.deepEqual([...table.stuck(2000 + 2000)], [1]);
    assert.deepEqual([...table.stuck(9000)], [], 'once');
    // The worker dies later: conn 2 had its 504, conn 3 (streaming) gets a close.
    table.workerGone(1, 9000, 0);
    assert.deepEqual(sink.take().filter((e) => e.kind === 'answer'), [{ kind: 'answer', server: 0, connId: 3, status: 0 }]);
    assert.equal(table.counters.answered504, 2);
  });

  test('a draining worker still gets the credits and the disconnect of a stream it serves', () => {
    const { table, sink } = setup([5, 5]);
    table.dispatch(0, req(1, '/stream'), 0); // w1
    table.report(1, started(1), 10);
    table.drain(1, 20);
    sink.take();
    table.dispatch(0, credits(1), 30);
    table.dispatch(0, disconnect(1), 40);
    assert.deepEqual(sink.forwardedTo(), [1, 1]);
    table.report(1, records([REPORT_HANDLED, 0, 1], [REPORT_HANDLED, 0, 1], [REPORT_DONE, 0, 1]), 50);
    assert.equal(table.conns.has(1), false, 'released and done: forgotten');
    assert.equal(table.queued, 0);
  });

  test('the wait queue full: credits are never refused; a request on a connection with a response under way closes it instead of a 503', () => {
    const { table, sink } = setup([1], 1);
    table.dispatch(0, req(1, '/stream'), 0); // uses the only credit
    table.report(1, started(1), 0);
    table.dispatch(0, req(2), 0); // waits: the queue is full now
    sink.take();
    table.dispatch(0, credits(1), 1);
    table.dispatch(0, credits(1), 2);
    assert.deepEqual(sink.take(), [], 'parked, not refused');
    table.dispatch(0, req(1, '/pipelined'), 3);
    assert.deepEqual(sink.take(), [{ kind: 'overflow' }, { kind: 'answer', server: 0, connId: 1, status: 0 }]);
    table.dispatch(0, req(3), 4);
    assert.deepEqual(sink.take(), [{ kind: 'overflow' }, { kind: 'answer', server: 0, connId: 3, status: 503 }]);
  });

  test('worker gone: a connection whose client left gets nothing; credits parked for it are not re-routed', () => {
    const { table, sink } = setup([1, 5]);
    table.dispatch(0, req(1, '/stream'), 0); // w2 (more credit)
    table.report(2, records([REPORT_STARTED, 0, 1], [REPORT_CREDIT, 0, 0]), 0);
    table.workers.get(2)!.credit = 0; // no credit: what comes for conn 1 is parked
    table.dispatch(0, credits(1), 1);
    table.dispatch(0, disconnect(1), 2);
    sink.take();
    table.workerGone(2, 3, 0);
    assert.deepEqual(sink.take(), [], 'no answer, nothing forwarded to w1');
    assert.equal(table.queued, 0);
  });

  test('no worker serving: messages waiting NO_WORKER_WAIT_MS get a 503, younger ones wait on', () => {
    const { table, sink } = setup([]);
    table.addWorker(1); // booting: not connected
    table.dispatch(0, req(1), 0);
    table.dispatch(0, req(2), 2000);
    table.dispatch(0, credits(7), 0); // a control message is never answered
    assert.equal(table.queued, 3);
    assert.equal(table.serving, false);
    assert.equal(table.refuseWaiting(2999, 3000), 0);
    assert.equal(table.refuseWaiting(3000, 3000), 1);
    assert.deepEqual(sink.take(), [{ kind: 'answer', server: 0, connId: 1, status: 503 }]);
    assert.equal(table.queued, 1);
    table.report(1, credit(5), 3100);
    assert.deepEqual(sink.forwardedTo(), [1], 'the younger one is served once a worker is up');
  });
});
