"""What the items API answers, route by route (the OpenAPI document is built from them: a route
missing here fails it); the bodies' models are in api.py, beside the views that validate and
serialise with them."""

from ..platform.operations import Operation
from .api import ItemIn, ItemList, ItemOut, Page

OPERATIONS = {
    "items.create_item": Operation(
        {"201": ("The item was created.", ItemOut, ("Location",))},
        ("400", "413", "415", "422", "503"),
        body=ItemIn,
    ),
    "items.get_item": Operation(
        {"200": ("The item.", ItemOut, ("X-Cache",))},
        ("404", "503"),
        texts={"404": "No item with this id."},
    ),
    "items.update_item": Operation(
        {"200": ("The item as changed.", ItemOut, ())},
        ("400",{% if cookiecutter.use_auth == "yes" %} "403",{% endif %} "404", "413", "415", "422", "503"),
        body=ItemIn,
        texts={
{%- if cookiecutter.use_auth == "yes" %}
            "403": "The item is another user's: only the user who created it may change it.",
{%- endif %}
            "404": "No item with this id.",
        },
    ),
    "items.delete_item": Operation(
        {"204": ("The item is deleted.", None, ())},
        ({% if cookiecutter.use_auth == "yes" %}"403", {% endif %}"404", "503"),
        media_type="",
        texts={
{%- if cookiecutter.use_auth == "yes" %}
            "403": "The item is another user's: only the user who created it may delete it.",
{%- endif %}
            "404": "No item with this id.",
        },
    ),
    "items.list_items": Operation(
        {"200": ("A page of items, newest first.", ItemList, ())},
        ("422", "503"),
        query=Page,
    ),
}
