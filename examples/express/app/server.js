// A classic CommonJS Express app that starts itself with app.listen(PORT), unchanged.
// wsgid captures the server while importing this file (nothing binds port 3000) and serves it.
// Found through app/package.json "main".
const express = require('express');

const app = express();
app.use(express.json());

app.get('/', (req, res) => res.type('text').send('Hello from Express behind mongrel2\n'));
app.get('/hello/:name', (req, res) => res.json({ hello: req.params.name, via: 'express' }));
app.post('/echo', (req, res) => res.json({ received: req.body }));

const port = Number(process.env.PORT) || 3000;
const server = app.listen(port, () => {
  console.log(`express example listening on port ${server.address().port}`);
});
