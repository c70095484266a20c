/**
 * The rules of the worker's request loop, apart from its I/O (src/worker/: uploads.ts, download-credits.ts,
 * idle-pings.ts, connections.ts, broadcaster.ts, in-flight.ts). The loop itself is covered by the
 * integration tests (uploads, flow-control, disconnect, long-lived, broadcast).
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import type { Mongrel2Headers, Mongrel2Message } from '../../src/protocol/index.js';
import {
  excessLength,
  judgeUploadDone,
  judgeUploadStart,
  plausibleUpload,
  uploadFileName,
  uploadStore,
  type UploadStore,
} from '../../src/worker/uploads.js';
import { grantedCredits, initialCredits } from '../../src/worker/download-credits.js';
import { needsPing, pingPeriod } from '../../src/worker/idle-pings.js';
import { connectionKey, ConnectionQueues, type QueuedMessage } from '../../src/worker/connections.js';
import { routeBroadcast } from '../../src/worker/broadcaster.js';
import { InFlightCount } from '../../src/worker/in-flight.js';

function message(headers: Mongrel2Headers, body = Buffer.alloc(0), connId = 7): Mongrel2Message {
  return { kind: 'request', sender: 'sender-1', connId, path: '/up', headers: { METHOD: 'POST', ...headers }, body };
}

const UPLOAD = '/tmp/upload.a1B2c3';
const STORE: UploadStore = { template: '/tmp/upload.XXXXXX', dir: '/tmp' };
const CHROOTED: UploadStore = { template: '/tmp/upload.XXXXXX', dir: '/srv/m2/tmp' };
const uploadHeaders = (extra: Mongrel2Headers = {}): Mongrel2Headers => ({
  'content-length': '30000',
  'x-mongrel2-upload-start': UPLOAD,
  ...extra,
});

describe('uploads: which upload messages to believe', () => {
  test('a real upload has an empty body and a body that went the upload path', () => {
    assert.equal(plausibleUpload(message(uploadHeaders()), 'x-mongrel2-upload-start'), UPLOAD);
    const chunked = message({ 'transfer-encoding': 'chunked', 'x-mongrel2-upload-start': UPLOAD });
    assert.equal(plausibleUpload(chunked, 'x-mongrel2-upload-start'), UPLOAD);
  });

  test('a client copy of the header is not believed', () => {
    const cases: Mongrel2Message[] = [
      message(uploadHeaders(), Buffer.from('inline body')), // an inline body
      message(uploadHeaders({ 'content-length': '0' })), // nothing to upload
      message(uploadHeaders({ 'content-length': 'x12' })),
      message({ 'x-mongrel2-upload-start': UPLOAD }), // no length at all
      message(uploadHeaders({ 'x-mongrel2-upload-start': [UPLOAD, UPLOAD] })), // sent twice: a list
      message(uploadHeaders({ 'x-mongrel2-upload-start': '' })),
      message(uploadHeaders({ 'content-length': ['30000', '30000'] })),
    ];
    for (const forged of cases) assert.equal(plausibleUpload(forged, 'x-mongrel2-upload-start'), undefined);
  });

  test('the upload store: the template under the chroot; none without XXXXXX or when relative without a chroot', () => {
    assert.deepEqual(uploadStore('/tmp/upload.XXXXXX', ''), STORE);
    assert.deepEqual(uploadStore('/tmp/upload.XXXXXX', '/srv/m2'), CHROOTED);
    assert.deepEqual(uploadStore('tmp/upload.XXXXXX', '/srv/m2'), { template: 'tmp/upload.XXXXXX', dir: '/srv/m2/tmp' });
    assert.deepEqual(uploadStore('/../../up.XXXXXX', '/srv/m2'), { template: '/../../up.XXXXXX', dir: '/srv/m2' });
    assert.match(String(uploadStore('tmp/upload.XXXXXX', '')), /relative to mongrel2's working folder/);
    assert.match(String(uploadStore('/tmp/upload', '')), /does not end in XXXXXX/);
    assert.match(String(uploadStore('', '')), /no --mongrel2-upload-store/);
  });

  test('only the template with its XXXXXX filled in names an upload file', () => {
    assert.equal(uploadFileName(STORE, '/tmp/upload.a1B2c3'), 'upload.a1B2c3');
    for (const forged of ['/etc/shadow', '/tmp/upload.a1B2c', '/tmp/upload.a1B2c34', '/tmp/upload../x1', '/tmp/upload.a1/2c3', '/../../x', '/tmp/other.a1B2c3', 'tmp/upload.a1B2c3', '/tmp/upload.a1B2c\0', '/tmp/upload.XXXXXX'.replace('XXXXXX', '../../')]) {
      assert.equal(uploadFileName(STORE, forged), undefined, forged);
    }
  });

  test('upload-start: track, serve as a request, or ignore', () => {
    assert.deepEqual(judgeUploadStart(message(uploadHeaders()), STORE), { action: 'track', file: UPLOAD });
    assert.deepEqual(judgeUploadStart(message(uploadHeaders()), CHROOTED), { action: 'track', file: '/srv/m2' + UPLOAD });
    assert.deepEqual(judgeUploadStart(message(uploadHeaders(), Buffer.from('x')), STORE), { action: 'serve-as-request' });
    assert.deepEqual(judgeUploadStart(message(uploadHeaders({ 'x-mongrel2-upload-start': '/etc/shadow' })), STORE), {
      action: 'ignore',
      reported: '/etc/shadow',
    });
    assert.deepEqual(judgeUploadStart(message(uploadHeaders()), undefined), { action: 'ignore', reported: UPLOAD });
  });

  test('upload-done: done must equal start, be a file of the store and match the upload-start seen', () => {
    const done = (extra: Mongrel2Headers = {}): Mongrel2Message =>
      message(uploadHeaders({ 'x-mongrel2-upload-done': UPLOAD, ...extra }));
    assert.deepEqual(judgeUploadDone(done(), UPLOAD, STORE), { action: 'serve-file', file: UPLOAD });
    // No upload-start seen by this worker (e.g. it went to another worker before a reload): believed.
    assert.deepEqual(judgeUploadDone(done(), undefined, STORE), { action: 'serve-file', file: UPLOAD });
    assert.deepEqual(judgeUploadDone(done(), '/tmp/upload.zzzzzz', STORE), { action: 'refuse' });
    assert.deepEqual(judgeUploadDone(done({ 'x-mongrel2-upload-start': '/tmp/upload.zzzzzz' }), undefined, STORE), { action: 'refuse' });
    for (const forged of ['/etc/shadow', '/../../x', '/']) {
      assert.deepEqual(judgeUploadDone(done({ 'x-mongrel2-upload-done': forged, 'x-mongrel2-upload-start': forged }), undefined, CHROOTED), {
        action: 'outside-store',
        reported: forged,
      });
    }
    assert.deepEqual(judgeUploadDone(done(), undefined, undefined), { action: 'outside-store', reported: UPLOAD });
    assert.deepEqual(judgeUploadDone(message(uploadHeaders({ 'x-mongrel2-upload-done': UPLOAD }), Buffer.from('x')), UPLOAD, STORE), {
      action: 'serve-as-request',
    });
  });

  test('a file longer than Content-Length is cut to it; chunked uploads are not', () => {
    assert.equal(excessLength('100', 150), 100);
    assert.equal(excessLength('100', 100), undefined);
    assert.equal(excessLength('100', 50), undefined);
    assert.equal(excessLength(undefined, 150), undefined);
    assert.equal(excessLength(['100', '100'], 150), undefined);
    assert.equal(excessLength('-1', 150), undefined);
    assert.equal(excessLength('1e400', 150), undefined);
  });
});

describe('credits: the DOWNLOAD_CREDITS headers', () => {
  test('an initial credit is a positive integer', () => {
    assert.equal(initialCredits('102400'), 102400);
    for (const bad of [undefined, '', '0', '-5', '1.5', 'lots', ['1', '2']]) assert.equal(initialCredits(bad), undefined, String(bad));
  });
  test('a grant is a number (nonsense is NaN, which ConnectionFlow.grant ignores)', () => {
    assert.equal(grantedCredits('4096'), 4096);
    assert.ok(Number.isNaN(grantedCredits(undefined)));
    assert.ok(Number.isNaN(grantedCredits(['1'])));
  });
});

describe('keep-alive pings', () => {
  test('the period: half the keep-alive, between 10 ms and 5 s', () => {
    assert.equal(pingPeriod(1000), 500);
    assert.equal(pingPeriod(4), 10);
    assert.equal(pingPeriod(30_000), 5000);
  });
  test('only open responses quiet for the whole keep-alive are pinged', () => {
    const reply = (lastActivity: number, state: { ended?: boolean; closed?: boolean } = {}) => ({
      ended: state.ended ?? false,
      closed: state.closed ?? false,
      lastActivity,
      ping: () => {},
    });
    assert.equal(needsPing(reply(0), 1000, 1000), true);
    assert.equal(needsPing(reply(1), 1000, 1000), false);
    assert.equal(needsPing(reply(0, { ended: true }), 5000, 1000), false);
    assert.equal(needsPing(reply(0, { closed: true }), 5000, 1000), false);
  });
});

describe('connections: one request at a time per connection, in arrival order', () => {
  const queued = (connId: number, path: string, bodyFile?: string): QueuedMessage => ({
    message: { ...message({}, Buffer.alloc(0), connId), path },
    bodyFile,
  });

  test('keys keep servers apart', () => {
    assert.notEqual(connectionKey(0, 5), connectionKey(1, 5));
    assert.equal(connectionKey(1, 0xffffffff) + 1, connectionKey(2, 0));
  });

  test('pipelined requests wait and are served in order; an idle connection is forgotten', () => {
    const queues = new ConnectionQueues<string>();
    const key = connectionKey(0, 1);
    assert.equal(queues.admit(key, queued(1, '/a')), true);
    queues.begin(key, 'a');
    assert.equal(queues.admit(key, queued(1, '/b')), false);
    assert.equal(queues.admit(key, queued(1, '/c')), false);
    assert.equal(queues.admit(connectionKey(0, 2), queued(2, '/other')), true, 'another connection is not held up');
    assert.equal(queues.active(key), 'a');
    assert.equal(queues.next(key)?.message.path, '/b');
    queues.begin(key, 'b');
    assert.equal(queues.next(key)?.message.path, '/c');
    queues.begin(key, 'c');
    assert.equal(queues.next(key), undefined);
    assert.equal(queues.active(key), undefined);
    assert.equal(queues.admit(key, queued(1, '/d')), true, 'served at once after going idle');
  });

  test('a disconnect drops what waits, not the active request', () => {
    const queues = new ConnectionQueues<string>();
    const key = connectionKey(0, 1);
    queues.admit(key, queued(1, '/a'));
    queues.begin(key, 'a');
    queues.admit(key, queued(1, '/b', '/tmp/upload'));
    assert.deepEqual(
      queues.dropQueued(key).map((q) => q.bodyFile),
      ['/tmp/upload'],
    );
    assert.deepEqual(queues.dropQueued(connectionKey(0, 99)), []);
    assert.equal(queues.active(key), 'a');
    assert.equal(queues.next(key), undefined);
  });

  test('a shutdown drops what waits on every connection and lists the active requests', () => {
    const queues = new ConnectionQueues<string>();
    for (const connId of [1, 2]) {
      const key = connectionKey(0, connId);
      queues.admit(key, queued(connId, '/first'));
      queues.begin(key, `active${connId}`);
      queues.admit(key, queued(connId, '/second'));
    }
    assert.equal(queues.dropAllQueued().length, 2);
    assert.deepEqual([...queues.actives()].sort(), ['active1', 'active2']);
    assert.equal(queues.next(connectionKey(0, 1)), undefined);
  });
});

describe('broadcast routing', () => {
  test('into an open response, else through download credits, else a multi-id reply', () => {
    const open = { ended: false, closed: false };
    assert.equal(routeBroadcast(open, true), 'response');
    assert.equal(routeBroadcast(open, false), 'response');
    assert.equal(routeBroadcast({ ended: true, closed: false }, true), 'flow');
    assert.equal(routeBroadcast({ ended: false, closed: true }, false), 'direct');
    assert.equal(routeBroadcast(undefined, true), 'flow');
    assert.equal(routeBroadcast(undefined, false), 'direct');
  });
});

describe('in-flight count', () => {
  test('whenIdle resolves when the count returns to zero', async () => {
    const count = new InFlightCount();
    await count.whenIdle(); // nothing in flight: at once
    count.delivered();
    count.delivered();
    let idle = false;
    const waiting = count.whenIdle().then(() => (idle = true));
    count.done();
    await Promise.resolve();
    assert.equal(idle, false);
    count.done();
    await waiting;
    assert.equal(count.value, 0);
  });
});

describe('download credits: a response tail waiting for credit', () => {
  test('whenSent waits for the tail to get its credit (the worker reports the request done only then), or for the client to go', async () => {
    const { ConnectionFlow } = await import('../../src/worker/credit-queue.js');
    const sent: Buffer[] = [];
    const socket = { send: (b: Buffer) => void sent.push(b) } as unknown as ConstructorParameters<typeof ConnectionFlow>[0];
    const flow = new ConnectionFlow(socket, 'sender-1', 7, 1000);
    flow.send(Buffer.alloc(3000, 0x61));
    let done = 0;
    flow.whenSent(() => done++);
    assert.equal(done, 0, '2000 bytes wait for credit');
    flow.grant(1000);
    assert.equal(done, 0);
    flow.grant(1000);
    assert.equal(done, 1, 'all sent');
    flow.whenSent(() => done++);
    assert.equal(done, 2, 'nothing queued: at once');
    flow.send(Buffer.alloc(5000, 0x62));
    flow.whenSent(() => done++);
    flow.gone();
    assert.equal(done, 3, 'the client left: nothing more will be sent');
  });
});
