"""What the items API answers, route by route: the item as returned, a page of them, and each
route's statuses (the OpenAPI document is built from them: a route missing here fails it)."""

from typing import Literal

from pydantic import AwareDatetime, BaseModel, Field

from ..platform.operations import Operation
from .api import ItemIn, Page


class Item(BaseModel):
    """An item as the API returns it."""

    id: int = Field(ge=1)
    name: str
    description: str
    created_at: AwareDatetime
    status: Literal["pending", "processed"]
    processed_at: AwareDatetime | None


class ItemList(BaseModel):
    """One page of items, newest first, with the total count."""

    items: list[Item]
    total: int = Field(ge=0)
    limit: int
    offset: int


OPERATIONS = {
    "api.create_item": Operation(
        {"201": ("The item was created.", Item, ("Location",))},
        ("400", "413", "415", "422", "503"),
        body=ItemIn,
    ),
    "api.get_item": Operation({"200": ("The item.", Item, ("X-Cache",))}, ("404", "503")),
    "api.list_items": Operation(
        {"200": ("A page of items, newest first.", ItemList, ())},
        ("422", "503"),
        query=Page,
    ),
}
