// A Hono app: the default export has a fetch() method, so wsgid serves it through the fetch gateway.
// Detected as app/server.js (conventional entry name); no listen() call, no port.
import { Hono } from 'hono';

const app = new Hono();

app.get('/', (c) => c.text('Hello from Hono behind mongrel2\n'));
app.get('/hello/:name', (c) => c.json({ hello: c.req.param('name'), via: 'hono' }));
app.post('/echo', async (c) => c.json({ received: await c.req.text() }));

export default app;
