"""FastAPI's tutorial shape (main.py, app = FastAPI()): a pydantic model returned from a path
operation with a path parameter and a query parameter. Deterministic, so that the bench can check
that wsgid (--asgi=main:app) and uvicorn serve the same bytes before it measures either."""
from typing import List, Optional

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel


class Price(BaseModel):
    amount: float
    currency: str = "EUR"


class Item(BaseModel):
    item_id: int
    name: str
    description: Optional[str] = None
    price: Price
    tax: Optional[float] = None
    tags: List[str] = []
    q: Optional[str] = None


app = FastAPI(title="Bench items")

TAGS = ["new", "sale", "eco", "bulk"]


@app.get("/items/{item_id}", response_model=Item)
async def read_item(item_id: int, q: Optional[str] = None, short: bool = False):
    if item_id < 0:
        raise HTTPException(status_code=404, detail="Item not found")
    item = Item(
        item_id=item_id,
        name=f"Item {item_id}",
        description=None if short else f"The item number {item_id}, described at some length.",
        price=Price(amount=round(3.5 + item_id * 1.75, 2)),
        tax=round((3.5 + item_id * 1.75) * 0.2, 2),
        tags=TAGS[: item_id % 5],
        q=q,
    )
    return item
