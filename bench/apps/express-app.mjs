// A "realistic" small Express app: JSON body parsing, a couple of middlewares, a few routes.
// The bench posts JSON to /api/items (see express-post.lua); GET / and /api/items/:id also work.
import express from 'express';

const app = express();
app.disable('x-powered-by');

// Middleware: request id + timing header, like many production apps.
let nextId = 1;
app.use((req, res, next) => {
  const started = process.hrtime.bigint();
  res.setHeader('X-Request-Id', String(nextId++));
  const end = res.end;
  res.end = function (...args) {
    res.setHeader('Server-Timing', `app;dur=${Number(process.hrtime.bigint() - started) / 1e6}`);
    return end.apply(this, args);
  };
  next();
});
app.use(express.json({ limit: '100kb' }));

const items = new Map();

app.get('/', (_req, res) => {
  res.type('text/plain').send('Hello, world!');
});

app.get('/api/items/:id', (req, res) => {
  const item = items.get(req.params.id);
  if (!item) return res.status(404).json({ error: 'not found' });
  res.json(item);
});

app.post('/api/items', (req, res) => {
  const body = req.body ?? {};
  if (typeof body.name !== 'string') return res.status(400).json({ error: 'name required' });
  const id = String(items.size % 1000);
  const item = { id, name: body.name, tags: Array.isArray(body.tags) ? body.tags : [], at: Date.now() };
  items.set(id, item);
  res.status(201).json(item);
});

app.use((err, _req, res, _next) => {
  res.status(err.status ?? 500).json({ error: err.message });
});

export default app;
