// A fetch app written in TypeScript, named by app/package.json "wsgid": "src/server.ts".
// `./routes.js` is the TypeScript ESM convention for ./routes.ts.
import { Greeter, Greeting, type Hello } from './routes.js';

const greeter = new Greeter(Greeting.Hello);

function json(value: Hello | { received: string }, status = 200): Response {
  return Response.json(value, { status });
}

export default {
  async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname === '/') return new Response('Hello from TypeScript behind mongrel2\n');
    if (url.pathname.startsWith('/hello/')) return json(greeter.greet(decodeURIComponent(url.pathname.slice(7))));
    if (url.pathname === '/echo' && request.method === 'POST') return json({ received: await request.text() });
    return new Response('not found\n', { status: 404 });
  },
};
