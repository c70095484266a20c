// A Koa app exported as the default export: wsgid serves app.callback() through the Node gateway.
// Detected as app/index.mjs (conventional entry name).
import Koa from 'koa';

const app = new Koa();

app.use(async (ctx) => {
  if (ctx.path === '/') {
    ctx.type = 'text/plain';
    ctx.body = 'Hello from Koa behind mongrel2\n';
  } else if (ctx.path.startsWith('/hello/')) {
    ctx.body = { hello: decodeURIComponent(ctx.path.slice('/hello/'.length)), via: 'koa' };
  } else {
    ctx.status = 404;
    ctx.body = 'not found\n';
  }
});

export default app;
