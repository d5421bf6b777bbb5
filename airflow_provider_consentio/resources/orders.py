"""The seller's orders, their edits and external references, and the orders placed on behalf of buyers.

ASSUMPTIONS where the documentation is silent (../shared/consentio-api.md): ``from``/``to`` select orders by
``created_at`` over the half-open window ``[from, to)``, one ``status`` per request; ``since`` is the edited
orders' parameter and a marked-seen edit drops out; the bodies of the writes below.
"""

from __future__ import annotations

from airflow_provider_consentio.resources._declaration import (
    MODELS,
    AssetName,
    ChildRows,
    Choices,
    Read,
    Resource,
    TableSpec,
    Write,
)

_STAMPS = ("created_at", "updated_at")
_ORDER_NUMBERS = ("price", "weight", *(f"items[].{name}" for name in ("amount", "price", "total_price")))
# Documented: numbers are JSON numbers, date-times RFC 3339.
ORDER_FIELD_KINDS = {
    "hash_id": "string",
    **dict.fromkeys((*_STAMPS, "closed_at", "delivery_estimated_at", "pickup_estimated_at"), "timestamp"),
    **dict.fromkeys((*_ORDER_NUMBERS, "items[].served_amount", "items[].served_price"), "number"),
}

# The readers of the order listings, for `consentio check`: a drift there fails these.
_WATCHES = ("ConsentioOrdersSensor", "ConsentioOrdersTrigger", "ConsentioOrdersEventTrigger")

ORDERS = Resource(
    name="orders",
    noun="order",
    nouns="orders",
    lineage="orders/{kind}",
    read=Read(
        path="/order",
        keys=f"{MODELS}:OrderId",
        typed=ORDER_FIELD_KINDS,
        documented=f"{MODELS}:VIEW_ORDER_FIELDS",
        window=("from", "to"),
        params={"kind": Choices(f"{MODELS}:ORDER_KINDS"), "status": Choices(f"{MODELS}:ORDER_STATUSES")},
        required=("kind",),
        records_per_request=2000,
        asset=AssetName("consentio_{kind}_orders", "orders/{kind}"),
        readers=("ConsentioExportOrdersOperator", "ConsentioExportOrdersByPeriodOperator", *_WATCHES),
    ),
    table=TableSpec(
        name="orders",
        key=("id",),
        model=f"{MODELS}:Order",
        leave_out=("items",),
        child=ChildRows(
            name="order_items",
            path="items",
            model=f"{MODELS}:OrderItem",
            parent_columns=("order_id",),
            key=("order_id", "item_id"),
            rename={"id": "item_id"},
        ),
    ),
)

EDITED_ORDERS = Resource(
    name="edited_orders",
    noun="edited order",
    nouns="edited orders",
    lineage="orders/edited",
    read=Read(
        path="/order/edited",
        keys=f"{MODELS}:EditedOrderKeys",
        typed=ORDER_FIELD_KINDS,
        documented=f"{MODELS}:VIEW_ORDER_FIELDS",
        params={"since": "instant"},
        required=("since",),
        asset=AssetName("consentio_edited_orders", "orders/edited"),
        readers=("ConsentioEditedOrdersOperator", "ConsentioMarkOrdersSeenOperator", *_WATCHES),
    ),
    # Marking edits seen: {"hash_ids": [...]} -> {"seen": [...], "errors": ["<hash_id>: <reason>"]}.
    write=Write(
        "POST",
        "/order/seen",
        model=f"{MODELS}:SeenOrder",
        key_field="hash_id",
        body_key="hash_ids",
        item_field="hash_id",
        saved_key="seen",
    ),
)

EXTERNAL_REFERENCES = Resource(
    name="external_references",
    noun="external reference",
    nouns="external references",
    lineage="orders/sale",
    # {"orders": [{hash_id, external_id, external_status, cancel}]} -> {"orders": [...], "errors": [...]}.
    write=Write(
        "PUT",
        "/order/external",
        model=f"{MODELS}:ExternalReference",
        key_field="hash_id",
        body_key="orders",
        saved_key="orders",
    ),
)

PROMOTED_ORDERS = Resource(
    name="promoted_orders",
    noun="promoted order",
    nouns="promoted orders",
    lineage="orders/promoted",
    # A create, one order per request, with no documented idempotency key: never sent twice blindly. The order
    # carries the caller's reference (its external_id) so that it can be found again (see PromotedOrder).
    write=Write(
        "POST",
        "/promoted-order",
        model=f"{MODELS}.catalogue:PromotedOrder",
        key_field="reference",
        body_key=None,
        idempotent=False,
        rejected_key_name="reference",
    ),
)
