"""Hello world as an ASGI 3 application, for wsgid (--asgi) and for uvicorn."""

BODY = b"Hello, world!"
HEADERS = [(b"content-type", b"text/plain"), (b"content-length", str(len(BODY)).encode())]


async def app(scope, receive, send):
    if scope["type"] != "http":
        return  # lifespan: nothing to do (returning is "unsupported", as uvicorn's auto mode accepts)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
