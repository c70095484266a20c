// A Fastify app that exports nothing and starts itself once its plugins are ready. The listen()
// happens after the import has finished (fastify waits for ready()): wsgid keeps capturing until a
// server listens, then serves the captured server. Detected as app/server.js.
import Fastify from 'fastify';

const app = Fastify({ logger: false });

app.get('/', async (request, reply) => {
  reply.type('text/plain');
  return 'Hello from Fastify behind mongrel2\n';
});
app.get('/hello/:name', async (request) => ({ hello: request.params.name, via: 'fastify' }));
app.post('/echo', async (request) => ({ received: request.body }));

app.listen({ port: Number(process.env.PORT) || 3000, host: '127.0.0.1' }).then((address) => {
  console.log(`fastify example listening at ${address}`);
});
