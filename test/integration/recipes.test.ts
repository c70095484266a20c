/**
 * Framework recipes (README "Your app", docs/LOADERS.md), each app as its starter or
 * its framework's docs make it, served by `wsgid start` behind a real mongrel2 and by `wsgid dev`
 * at the URL it prints, checked with real clients:
 * - an express-generator app (test/fixtures/starters/express-app, `npx express-generator@4.16.1
 *   --view=pug`), compared with its own `npm start` (the oracle): its index page, /users, a static
 *   file from public/, a 404;
 * - Flask's "Uploading Files" app (a form, request.files['file'], secure_filename, saved in an
 *   upload folder) with mongrel2's async uploads on: a 3 MB curl multipart upload is saved whole;
 *   under `wsgid dev` an edit of app.py is served after the reload;
 * - FastAPI's WebSockets example (@app.websocket("/ws"), receive_text/send_text) through --asgi,
 *   with the `ws` client: several messages echoed, then a clean close.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startMongrel2, type Mongrel2Handle } from '../helpers/mongrel2.js';
import { request } from '../helpers/http.js';
import { startWsgid, wsgidArgs, type WsgidProcess } from '../helpers/wsgid.js';
import { waitFor } from '../helpers/processes.js';
import { prng } from '../helpers/prng.js';
import { PYTHON, startPythonApp } from '../helpers/python-app.js';
import { UPLOAD_SETTINGS, run, uploadArgs } from '../helpers/push.js';
import { WsClient } from '../helpers/ws-client.js';
import { startDev } from '../helpers/dev.js';
import { appDirOf, npmStart, setUpStarters, wsgidFolder, type Oracle } from '../helpers/starters.js';

const SEED = Number(process.env['RECIPES_TEST_SEED'] ?? 0x7ec1be);
const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

describe('express-generator (`npx express-generator@4.16.1 --view=pug`, `"start": "node ./bin/www"`)', () => {
  let m2: Mongrel2Handle;
  let oracle: Oracle;
  const dirs: string[] = [];
  before(async () => {
    await setUpStarters(['express-app']);
    m2 = await startMongrel2();
    oracle = await npmStart(appDirOf('express-app'));
  }, { timeout: 300_000 });
  after(async () => {
    await oracle?.stop();
    await m2?.stop();
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  /** The answers at `base` are those of the app's own `npm start`. */
  async function sameAsNpmStart(base: string, output: () => string): Promise<void> {
    for (const page of ['/', '/users', '/stylesheets/style.css']) {
      const [got, want] = await Promise.all([request(`${base}${page}`), request(`${oracle.base}${page}`)]);
      assert.equal(want.status, 200, page);
      assert.equal(got.status, 200, `${page}: ${got.text}\n${output()}`);
      for (const header of ['content-type', 'etag', 'x-powered-by']) assert.equal(got.headers[header], want.headers[header], `${page}: ${header}`);
      assert.ok(got.body.equals(want.body), `${page}: the same body`);
    }
    const index = await request(`${base}/`);
    assert.match(index.text, /<title>Express<\/title>/);
    assert.match(index.text, /<p>Welcome to Express<\/p>/);
    assert.equal((await request(`${base}/users`)).text, 'respond with a resource');
    assert.equal((await request(`${base}/stylesheets/style.css`)).text, await readFile(path.join(appDirOf('express-app'), 'public', 'stylesheets', 'style.css'), 'utf8'));
    // The generator's error handler renders error.pug (its stack differs below the app: not compared).
    const [got404, want404] = await Promise.all([request(`${base}/no/such/page`), request(`${oracle.base}/no/such/page`)]);
    assert.equal(want404.status, 404);
    assert.equal(got404.status, 404, output());
    assert.equal(got404.headers['content-type'], want404.headers['content-type']);
    for (const r of [got404, want404]) assert.match(r.text, /<h1>Not Found<\/h1><h2>404<\/h2>/);
  }

  test('wsgid start, through mongrel2', { timeout: 180_000 }, async () => {
    const dir = await wsgidFolder('express-app', dirs);
    const w = await startWsgid(wsgidArgs(m2.handler('app'), dir, ['--workers=1']), { cwd: dir, readyUrl: `${m2.baseUrl}/`, readyTimeoutMs: 60_000 });
    try {
      // The start script's file, run as the main module; the server it listens with is served.
      await w.waitForOutput(/app loaded app="app\/bin\/www \(server it started \(listen port 3000\), http\.Server; from package\.json scripts\.start\)"/);
      await sameAsNpmStart(m2.baseUrl, () => w.output());
      assert.ok((await request(`${m2.baseUrl}/`)).headers['x-wsgid'], 'answered by wsgid');
    } finally {
      assert.equal(await w.stop(), 0, w.output());
    }
  });

  test('wsgid dev APP_DIR, at the URL it prints', { timeout: 180_000 }, async () => {
    const dev = await startDev([appDirOf('express-app')]);
    try {
      await sameAsNpmStart(dev.url, () => dev.wsgid.output());
    } finally {
      assert.equal(await dev.wsgid.stop('SIGINT', 20_000), 0, dev.wsgid.output());
    }
  });
});

/** Flask's "Uploading Files" pattern (flask.palletsprojects.com/en/stable/patterns/fileuploads/). */
const FLASK_UPLOAD_APP = `import os
from flask import Flask, flash, request, redirect, url_for, send_from_directory
from werkzeug.utils import secure_filename

UPLOAD_FOLDER = os.environ['UPLOAD_FOLDER']
ALLOWED_EXTENSIONS = {'txt', 'pdf', 'png', 'jpg', 'jpeg', 'gif', 'bin'}

app = Flask(__name__)
app.config['UPLOAD_FOLDER'] = UPLOAD_FOLDER
app.secret_key = 'recipes test'

def allowed_file(filename):
    return '.' in filename and \\
           filename.rsplit('.', 1)[1].lower() in ALLOWED_EXTENSIONS

@app.route('/', methods=['GET', 'POST'])
def upload_file():
    if request.method == 'POST':
        # check if the post request has the file part
        if 'file' not in request.files:
            flash('No file part')
            return redirect(request.url)
        file = request.files['file']
        # If the user does not select a file, the browser submits an
        # empty file without a filename.
        if file.filename == '':
            flash('No selected file')
            return redirect(request.url)
        if file and allowed_file(file.filename):
            filename = secure_filename(file.filename)
            file.save(os.path.join(app.config['UPLOAD_FOLDER'], filename))
            return redirect(url_for('download_file', name=filename))
    return '''
    <!doctype html>
    <title>Upload new File</title>
    <h1>Upload new File</h1>
    <form method=post enctype=multipart/form-data>
      <input type=file name=file>
      <input type=submit value=Upload>
    </form>
    '''

@app.route('/uploads/<name>')
def download_file(name):
    return send_from_directory(app.config["UPLOAD_FOLDER"], name)
`;

describe("Flask's upload form, with mongrel2's async uploads (limits.content_length 4096)", () => {
  let parent: string;
  let upload: { file: string; data: Buffer };
  before(async () => {
    parent = await mkdtemp(path.join(os.tmpdir(), 'wsgid-recipe-flask-'));
    const rand = prng(SEED);
    const data = Buffer.alloc(3 * 1024 * 1024 + 77);
    for (let i = 0; i < data.length; i++) data[i] = Math.floor(rand() * 256);
    upload = { file: path.join(parent, 'payload.bin'), data };
    await writeFile(upload.file, data);
  });
  after(() => rm(parent, { recursive: true, force: true }));

  /** curl's multipart upload as a browser's form sends it; the file saved under secure_filename. */
  async function uploadThrough(base: string, uploads: string, output: () => string): Promise<void> {
    const form = await request(`${base}/`);
    assert.equal(form.status, 200, output());
    assert.match(form.text, /<form method=post enctype=multipart\/form-data>/);
    const r = await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code} %{redirect_url}', '-F', `file=@${upload.file};filename=../../my upload.bin`, `${base}/`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `302 ${base}/uploads/my_upload.bin`, output());
    assert.deepEqual(readdirSync(uploads), ['my_upload.bin'], 'secure_filename kept it in the upload folder');
    assert.equal(sha256(await readFile(path.join(uploads, 'my_upload.bin'))), sha256(upload.data), 'saved whole');
    const back = await request(`${base}/uploads/my_upload.bin`, { timeoutMs: 30_000 });
    assert.equal(back.status, 200);
    assert.equal(sha256(back.body), sha256(upload.data), 'downloaded whole');
  }

  test('wsgid start, through mongrel2 (--mongrel2-chroot as root): a 3 MB upload is saved whole', { timeout: 120_000 }, async () => {
    const site = path.join(parent, 'site');
    const uploads = path.join(parent, 'uploads-start');
    await mkdir(path.join(site, 'app'), { recursive: true });
    await mkdir(uploads);
    await writeFile(path.join(site, 'app', 'app.py'), FLASK_UPLOAD_APP);
    const m2 = await startMongrel2({ settings: { ...UPLOAD_SETTINGS } });
    let w: WsgidProcess | undefined;
    try {
      w = await startPythonApp(m2, site, [`--env=UPLOAD_FOLDER=${uploads}`, ...(m2.chrooted ? [] : uploadArgs(m2))]);
      await uploadThrough(m2.baseUrl, uploads, () => `${w!.output()}\n${m2.log()}`);
      const store = m2.resolvePath(path.dirname(String(UPLOAD_SETTINGS['upload.temp_store'])));
      assert.deepEqual(readdirSync(store).filter((f) => f.startsWith('upload.')), [], "wsgid removed mongrel2's upload file");
    } finally {
      if (w) assert.equal(await w.stop(), 0, w.output());
      await m2.stop();
    }
  });

  test('wsgid dev APP_DIR: the same upload, then an edit of app.py is served', { timeout: 180_000 }, async () => {
    const app = path.join(parent, 'flask-dev');
    const uploads = path.join(parent, 'uploads-dev'); // outside the watched folder: a saved file reloads nothing
    await mkdir(app);
    await mkdir(uploads);
    await writeFile(path.join(app, 'app.py'), FLASK_UPLOAD_APP);
    const dev = await startDev([app, `--python=${PYTHON}`, `--env=UPLOAD_FOLDER=${uploads}`]);
    try {
      await uploadThrough(dev.url, uploads, () => dev.wsgid.output());
      await writeFile(path.join(app, 'app.py'), FLASK_UPLOAD_APP.replace('<h1>Upload new File</h1>', '<h1>Upload another File</h1>'));
      await dev.wsgid.waitForOutput(/app\.py changed: reloading/, 30_000);
      await waitFor('the edited form', async () => /<h1>Upload another File<\/h1>/.test((await request(`${dev.url}/`)).text), 60_000);
    } finally {
      assert.equal(await dev.wsgid.stop('SIGINT', 20_000), 0, dev.wsgid.output());
    }
  });
});

/** FastAPI's WebSockets example (fastapi.tiangolo.com/advanced/websockets/). */
const FASTAPI_WS_APP = `from fastapi import FastAPI, WebSocket
from fastapi.responses import HTMLResponse

app = FastAPI()

html = """
<!DOCTYPE html>
<html>
    <head>
        <title>Chat</title>
    </head>
    <body>
        <h1>WebSocket Chat</h1>
        <form action="" onsubmit="sendMessage(event)">
            <input type="text" id="messageText" autocomplete="off"/>
            <button>Send</button>
        </form>
        <ul id='messages'>
        </ul>
        <script>
            var ws = new WebSocket("ws://localhost:8000/ws");
            ws.onmessage = function(event) {
                var messages = document.getElementById('messages')
                var message = document.createElement('li')
                var content = document.createTextNode(event.data)
                message.appendChild(content)
                messages.appendChild(message)
            };
            function sendMessage(event) {
                var input = document.getElementById("messageText")
                ws.send(input.value)
                input.value = ''
                event.preventDefault()
            }
        </script>
    </body>
</html>
"""


@app.get("/")
async def get():
    return HTMLResponse(html)


@app.websocket("/ws")
async def websocket_endpoint(websocket: WebSocket):
    await websocket.accept()
    while True:
        data = await websocket.receive_text()
        await websocket.send_text(f"Message text was: {data}")
`;

describe("FastAPI's WebSocket example, through --asgi", () => {
  let parent: string;
  before(async () => {
    parent = await mkdtemp(path.join(os.tmpdir(), 'wsgid-recipe-fastapi-'));
  });
  after(() => rm(parent, { recursive: true, force: true }));

  /** Seeded messages (ASCII, non-ASCII, empty, a few KiB) echoed in order, then the client's close. */
  async function chat(wsUrl: string, seed: number, output: () => string): Promise<void> {
    const rand = prng(seed);
    const alphabet = 'abc XYZ 019 é€ 漢字 🙂 "\'<>&';
    const messages = ['', ...Array.from({ length: 6 }, () => Array.from({ length: Math.floor(rand() * 3000) }, () => [...alphabet][Math.floor(rand() * [...alphabet].length)]).join(''))];
    const c = new WsClient(wsUrl);
    try {
      await c.opened.catch((error: Error) => assert.fail(`${error.message}\n${output()}`));
      for (const message of messages) assert.equal(await c.roundTrip(message), `Message text was: ${message}`);
      c.ws.close(1000, 'done');
      assert.equal((await c.closed).code, 1000, output());
    } finally {
      c.ws.terminate();
    }
  }

  test('wsgid start --asgi=main:app, through mongrel2', { timeout: 120_000 }, async () => {
    const site = path.join(parent, 'site');
    await mkdir(path.join(site, 'app'), { recursive: true });
    await writeFile(path.join(site, 'app', 'main.py'), FASTAPI_WS_APP);
    const m2 = await startMongrel2();
    let w: WsgidProcess | undefined;
    try {
      w = await startPythonApp(m2, site, ['--asgi=main:app']);
      const page = await request(`${m2.baseUrl}/`);
      assert.match(page.text, /<h1>WebSocket Chat<\/h1>/);
      await chat(`ws://127.0.0.1:${m2.port}/ws`, SEED + 1, () => `${w!.output()}\n${m2.log()}`);
    } finally {
      if (w) assert.equal(await w.stop(), 0, w.output());
      await m2.stop();
    }
  });

  test('wsgid dev APP_DIR --asgi=main:app, at the URL it prints', { timeout: 120_000 }, async () => {
    const app = path.join(parent, 'fastapi-dev');
    await mkdir(app);
    await writeFile(path.join(app, 'main.py'), FASTAPI_WS_APP);
    const dev = await startDev([app, `--python=${PYTHON}`, '--asgi=main:app']);
    try {
      await chat(`${dev.url.replace(/^http/, 'ws')}/ws`, SEED + 2, () => dev.wsgid.output());
    } finally {
      assert.equal(await dev.wsgid.stop('SIGINT', 20_000), 0, dev.wsgid.output());
    }
  });
});
