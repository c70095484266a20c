-- wrk script for the Express case: POST a small JSON document to /api/items.
wrk.method = "POST"
wrk.path = "/api/items"
wrk.body = '{"name":"widget","tags":["a","b","c"],"qty":3}'
wrk.headers["Content-Type"] = "application/json"
