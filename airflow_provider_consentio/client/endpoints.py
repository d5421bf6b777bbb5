"""The endpoint layer: every path, parameter, body and answer shape of the Partner API, in one I/O-free place.

Wire assumptions the docs leave open are marked ASSUMPTION here and in models.py; a confirmed schema drops in here
without touching the clients or the operators.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import msgspec
from pydantic import BaseModel, ValidationError

from airflow_provider_consentio.client import shapes
from airflow_provider_consentio.client.retry import excerpt
from airflow_provider_consentio.client.shapes import ListingShape
from airflow_provider_consentio.errors import ConsentioConfigError, ConsentioResponseError, ConsentioSchemaDriftError
from airflow_provider_consentio.models import (
    ORDER_KINDS,
    ORDER_STATUSES,
    VIEW_ORDER_FIELDS,
    AddressKeys,
    BatchResult,
    ClientKeys,
    EditedOrderKeys,
    ExternalReference,
    OrderId,
    OrderReferenceKeys,
    ProductKeys,
    PurchaseNeed,
    PurchaseNeedKeys,
    RawRecord,
    RecordError,
)
from airflow_provider_consentio.models.catalogue import (
    BasePrice,
    Client,
    ClientAddress,
    PriceGroupPrice,
    Product,
    PromotedOrder,
    products_csv,
)
from airflow_provider_consentio.models.jsonwire import JSONShapeError, compact_line, has_line_breaks, loads, split_array

PARTNER_PREFIX = "/v2/partner"
ModelT = TypeVar("ModelT", bound=BaseModel)
T = TypeVar("T")


@dataclass(frozen=True)
class Call:
    """One request, as data."""

    method: str
    path: str  # below /v2/partner
    params: Mapping[str, str] | None = None
    body: Any = None
    authenticated: bool = True
    # The answer holds new secrets (a login's tokens): its successful body is not redacted (ClientBase._received).
    returns_secrets: bool = False
    # Safe to send twice: reads, and writes keyed by an idempotency key (hash_id, purchase-need code).
    idempotent: bool = True
    # Batch writes: the key of the answer that lists the saved records.
    saved_key: str | None = None
    # A body that is not JSON (a CSV import): sent as is, with this content type.
    content: bytes | None = None
    content_type: str = "application/json"

    @property
    def endpoint(self) -> str:
        return f"{self.method} {PARTNER_PREFIX}{self.path}"


# --- what each listing answers (ASSUMPTIONS where the docs are silent); the client and `check` both read these ---

_STAMPS = ("created_at", "updated_at")
_ORDER_NUMBERS = ("price", "weight", *(f"items[].{name}" for name in ("amount", "price", "total_price")))
ORDERS = ListingShape(
    "orders",
    OrderId,
    # Documented: numbers are JSON numbers, date-times RFC3339.
    typed={
        "hash_id": "string",
        **dict.fromkeys((*_STAMPS, "closed_at", "delivery_estimated_at", "pickup_estimated_at"), "timestamp"),
        **dict.fromkeys((*_ORDER_NUMBERS, "items[].served_amount", "items[].served_price"), "number"),
    },
    documented=VIEW_ORDER_FIELDS,
    windowed=True,
)
EDITED_ORDERS = ListingShape("edited orders", EditedOrderKeys, ORDERS.typed, VIEW_ORDER_FIELDS)
PURCHASE_NEEDS = ListingShape(
    "purchase needs",
    PurchaseNeedKeys,
    typed={"start_date": "date", "end_date": "date", "quantity": "number", **dict.fromkeys(_STAMPS, "timestamp")},
    documented=frozenset(PurchaseNeed.model_fields),
    # The model page says {"purchase_needs": [...]}, the guide "an array": both are read.
    envelope="purchase_needs",
)
PRODUCTS = ListingShape(
    "products",
    ProductKeys,
    # Documented for the catalogue: numbers travel as strings.
    typed={"base_price": "decimal-string", **dict.fromkeys(_STAMPS, "timestamp")},
    documented=frozenset(Product.model_fields),
    windowed=True,
)
CLIENTS = ListingShape(
    "clients",
    ClientKeys,
    typed={"consentio_client_id": "integer", "workspace_id": "integer", **dict.fromkeys(_STAMPS, "timestamp")},
    documented=frozenset(Client.model_fields),
)
ADDRESSES = ListingShape(
    "addresses",
    AddressKeys,
    typed={"latitude": "number", "longitude": "number", **dict.fromkeys(_STAMPS, "timestamp")},
    documented=frozenset(ClientAddress.model_fields),
)
TEMPLATE_METHODS = ListingShape("export template methods", element="string")


@dataclass(frozen=True)
class Listing:
    """A list endpoint: its request, the shape of its answer, and the key fields read of each element (the
    shape's, unless a caller reads others of the same records)."""

    call: Call
    shape: ListingShape
    keys: type[msgspec.Struct] | None = None

    def __post_init__(self) -> None:
        if self.keys is None:
            object.__setattr__(self, "keys", self.shape.keys)

    @property
    def envelope(self) -> str | None:
        return self.shape.envelope

    def next_page(self, body: bytes) -> Call | None:
        """The request for the rest of the list. ASSUMPTION: lists are not paginated, one answer holds them all."""
        return None


class PartnerAPI:
    """The requests of one workspace's Partner API."""

    def __init__(self, workspace_id: int, api_key: str | None) -> None:
        self.workspace_id = workspace_id
        self._api_key = api_key
        self._ws = f"/{workspace_id}"

    def login(self) -> Call:
        if not self._api_key:
            raise ConsentioConfigError(
                f"No API key for workspace {self.workspace_id}: set the connection's password "
                "(only the public prepare and export-template endpoints work without one)"
            )
        return Call(
            "POST", f"{self._ws}/login", body={"api_key": self._api_key}, authenticated=False, returns_secrets=True
        )

    def orders(self, start: datetime, end: datetime, kind: str, status: str | None) -> Listing:
        # ASSUMPTION: from/to filter created_at over the half-open window [from, to); one status per request.
        if kind not in ORDER_KINDS:
            raise ConsentioConfigError(f"kind must be one of {', '.join(ORDER_KINDS)}, got {kind!r}")
        if status is not None and status not in ORDER_STATUSES:
            raise ConsentioConfigError(f"status must be one of {', '.join(ORDER_STATUSES)}, got {status!r}")
        # Formatted first: it refuses naive datetimes, which the comparison below would fail on with a TypeError.
        params = {"from": rfc3339(start, "start"), "to": rfc3339(end, "end"), "kind": kind}
        if end < start:
            raise ConsentioConfigError(f"the window ends ({end.isoformat()}) before it starts ({start.isoformat()})")
        if status:
            params["status"] = status
        return Listing(Call("GET", f"{self._ws}/order", params=params), ORDERS)

    def edited_orders(self, since: datetime) -> Listing:
        # ASSUMPTION: the parameter is named `since`; orders whose edit was marked seen drop out.
        call = Call("GET", f"{self._ws}/order/edited", params={"since": rfc3339(since, "since")})
        return Listing(call, EDITED_ORDERS)

    def external_references(self, references: Sequence[ExternalReference]) -> Call:
        # ASSUMPTION: body {"orders": [{hash_id, external_id, external_status, cancel}]}; answer {"orders", "errors"}.
        body = {"orders": [reference.to_wire() for reference in references]}
        return Call("PUT", f"{self._ws}/order/external", body=body, saved_key="orders")

    def mark_seen(self, hash_ids: Sequence[str]) -> Call:
        # ASSUMPTION: body {"hash_ids": [...]}; response {"seen": [...], "errors": ["<hash_id>: <reason>"]}.
        return Call("POST", f"{self._ws}/order/seen", body={"hash_ids": list(hash_ids)}, saved_key="seen")

    def prepare(self, hash_id: str) -> Call:
        # Public endpoint: no Authorization header. ASSUMPTION: no body; 404 for an unknown hash.
        if not hash_id or not isinstance(hash_id, str):
            raise ConsentioConfigError(f"hash_id must be a non-empty string, got {hash_id!r}")
        return Call("POST", f"{self._ws}/order/{quote(hash_id, safe='')}/prepare", authenticated=False)

    def template_methods(self) -> Call:
        return self.template_method_listing().call

    def template_method_listing(self) -> Listing:
        return Listing(Call("GET", "/export/template/methods", authenticated=False), TEMPLATE_METHODS)

    def upsert_purchase_needs(self, needs: Sequence[PurchaseNeed]) -> Call:
        if not needs:
            raise ConsentioConfigError("upsert_purchase_needs needs at least one record (the API requires one)")
        # Idempotent: `code` is the idempotency key, so a repeated batch replaces records with the same values.
        body = {"purchase_needs": [need.to_wire() for need in needs]}
        return Call("POST", f"{self._ws}/purchase-needs", body=body, saved_key="purchase_needs")

    def purchase_needs(self, start_date: date, end_date: date, status: str | None) -> Listing:
        if end_date < start_date:
            raise ConsentioConfigError(f"end_date {end_date} is before start_date {start_date}")
        params = {"start_date": start_date.isoformat(), "end_date": end_date.isoformat()}
        if status:
            params["status"] = status
        call = Call("GET", f"{self._ws}/purchase-needs", params=params)
        return Listing(call, PURCHASE_NEEDS)

    def promoted_order(self, order: PromotedOrder | Mapping[str, Any]) -> Call:
        # Creates an order: never repeated once the request may have reached the server. No idempotency key is
        # documented; the order carries the caller's reference (PromotedOrder.to_wire) so it can be found again.
        body = order.to_wire() if isinstance(order, PromotedOrder) else dict(order)
        return Call("POST", f"{self._ws}/promoted-order", body=body, idempotent=False)

    def orders_by_reference(self, start: datetime, end: datetime) -> Listing:
        """The orders a promoted-order read-back searches for the caller's references.

        ASSUMPTION: a promoted order is the caller's sale (GET /order?kind=sale), created when it was received,
        with the caller's reference as its external_id.
        """
        return Listing(self.orders(start, end, PROMOTED_ORDER_KIND, None).call, ORDERS, OrderReferenceKeys)

    # --- the seller's catalogue (ASSUMPTIONS: see models/catalogue.py and the sandbox's catalogue.py) ---------------
    # Every write below is keyed (sku, pricegroup_id + product, client_external_id, address external_id): repeating
    # a batch sets the same values again, so these are safe to retry.

    def upsert_products(self, products: Sequence[Product]) -> Call:
        body = {"products": [product.to_wire() for product in _at_least_one(products, "upsert_products")]}
        return Call("POST", f"{self._ws}/product", body=body, saved_key="products")

    def upsert_products_csv(
        self, products: Sequence[Product], *, separator: str, decimal_separator: str, language: str
    ) -> Call:
        """The same as a CSV import: the documented query options say how to read the document."""
        content = products_csv(
            _at_least_one(products, "upsert_products_csv"), separator=separator, decimal_separator=decimal_separator
        )
        params = {
            "language": language,
            "type": "product",
            "csvseparator": separator,
            "decimalseparator": decimal_separator,
        }
        return Call(
            "POST", f"{self._ws}/product", params=params, content=content, content_type="text/csv", saved_key="products"
        )

    def changed_products(self, start: datetime, end: datetime) -> Listing:
        # ASSUMPTION: from/to select products by updated_at over [from, to); the answer is a bare array.
        params = {"from": rfc3339(start, "start"), "to": rfc3339(end, "end")}
        if end < start:
            raise ConsentioConfigError(f"the window ends ({end.isoformat()}) before it starts ({start.isoformat()})")
        return Listing(Call("GET", f"{self._ws}/products", params=params), PRODUCTS)

    def base_prices(self, prices: Sequence[BasePrice]) -> Call:
        body = {"base_prices": [price.to_wire() for price in _at_least_one(prices, "set_base_prices")]}
        return Call("PUT", f"{self._ws}/products/baseprice", body=body, saved_key="base_prices")

    def sync_price_groups(self, rows: Sequence[PriceGroupPrice]) -> Call:
        body = {"pricegroups": [row.to_wire() for row in _at_least_one(rows, "sync_price_groups")]}
        return Call("POST", f"{self._ws}/pricegroups/sync", body=body, saved_key="pricegroups")

    def clients(self) -> Listing:
        return Listing(Call("GET", f"{self._ws}/client"), CLIENTS)

    def upsert_clients(self, clients: Sequence[Client]) -> Call:
        body = {"clients": [client.to_wire() for client in _at_least_one(clients, "upsert_clients")]}
        return Call("POST", f"{self._ws}/client", body=body, saved_key="clients")

    def addresses(self, client_external_id: str | None = None) -> Listing:
        params = {"client_external_id": client_external_id} if client_external_id else None
        return Listing(Call("GET", f"{self._ws}/client/address", params=params), ADDRESSES)

    def upsert_addresses(self, addresses: Sequence[ClientAddress]) -> Call:
        body = {"addresses": [address.to_wire() for address in _at_least_one(addresses, "upsert_addresses")]}
        return Call("POST", f"{self._ws}/client/address", body=body, saved_key="addresses")


PROMOTED_ORDER_KIND = "sale"


def _at_least_one(records: Sequence[T], method: str) -> Sequence[T]:
    if not records:
        raise ConsentioConfigError(f"{method} needs at least one record")
    return records


# --- answers ------------------------------------------------------------------------------------------------------


def json_value(call: Call, response: httpx.Response, body: bytes) -> Any:
    """The parsed JSON body (numbers exact), or an error naming the endpoint and quoting the start of the body."""
    if not body.strip():
        raise ConsentioResponseError(f"{call.endpoint} -> HTTP {response.status_code} with an empty body")
    try:
        return loads(body.decode(response.encoding or "utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise _unexpected_body(call, response, body, "is not valid JSON", str(exc)) from None


def raw_records(
    listing: Listing, response: httpx.Response, body: bytes, redact: Callable[[str], str]
) -> list[RawRecord]:
    """The elements of a list answer as exact bytes, each with its key fields (validated). The body is as sent
    (ClientBase._received does not redact a listing's): ``redact`` cleans what an error quotes of it.

    Two passes in C over the body, one splitting it and one reading the key fields of every element, cost far
    less than a Python call per element. An answer that differs from the listing's shape (another envelope, a key
    field renamed or retyped, paging) raises :class:`ConsentioSchemaDriftError` naming the field; so does a typed
    field (a number, a timestamp) of the first record that differs: a drift is systematic, one record shows it.
    """
    try:
        array, elements = split_array(body, listing.envelope)
        key_fields = msgspec.json.decode(array, type=list[listing.keys])  # type: ignore[name-defined]  # a runtime type
    except (JSONShapeError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        drift = _drift_of(listing, response, body)
        if drift is not None:
            raise drift from None
        raise _unexpected_body(
            listing.call, response, body, "is not a JSON array of records", str(exc), redact=redact
        ) from None
    paging = shapes.paging_differences(response.headers, None, len(elements))
    first = (
        shapes.breaking(shapes.record_differences(listing.shape, loads(bytes(elements[0])), listing.keys))
        if elements
        else []
    )
    if paging or first:
        raise ConsentioSchemaDriftError(
            listing.call.endpoint, response.status_code, [str(d) for d in paging or first], _first_record(first)
        )
    lines: list[Any] = elements
    if has_line_breaks(body):  # a pretty-printed answer: each element must still become one JSONL line
        lines = [compact_line(element) for element in elements]
    return [RawRecord(line, fields) for line, fields in zip(lines, key_fields, strict=True)]


def _first_record(differences: list[shapes.Difference]) -> str:
    return " (in its first record)" if differences else ""


def _drift_of(listing: Listing, response: httpx.Response, body: bytes) -> ConsentioSchemaDriftError | None:
    """Why a valid JSON answer could not be read as the listing's records, by field; None if it is not JSON."""
    try:
        value = loads(body)
    except ValueError:
        return None
    records, envelope = shapes.records_of(listing.shape, value)
    paging = shapes.paging_differences(response.headers, value, len(records))
    if envelope is not None or paging:
        answer = [str(d) for d in [*paging, envelope] if d]
        return ConsentioSchemaDriftError(listing.call.endpoint, response.status_code, answer)
    for number, record in enumerate(records, start=1):
        differences = shapes.breaking(shapes.record_differences(listing.shape, record, listing.keys))
        if differences:
            where = f" (record #{number} of {len(records)})"
            return ConsentioSchemaDriftError(
                listing.call.endpoint, response.status_code, [str(d) for d in differences], where
            )
    return None


def _unexpected_body(
    call: Call,
    response: httpx.Response,
    body: bytes,
    what: str,
    problem: str,
    redact: Callable[[str], str] | None = None,  # None: the body is redacted already (ClientBase._received)
) -> ConsentioResponseError:
    clean = redact or str
    content_type = response.headers.get("content-type", "no content type").split(";")[0]
    text = clean(body[:2000].decode("utf-8", errors="replace"))  # before the excerpt cuts a secret in two
    return ConsentioResponseError(
        f"{call.endpoint} -> HTTP {response.status_code} but the body {what} ({content_type}, {len(body)} bytes; "
        f"{clean(problem)}): {excerpt(text)!r}"
    )


def models(call: Call, value: Any, model: type[ModelT]) -> list[ModelT]:
    if not isinstance(value, list):
        raise ConsentioResponseError(f"{call.endpoint}: expected a JSON array, got {json_kind(value)}")
    try:
        return [model.model_validate(item) for item in value]
    except ValidationError as exc:
        raise ConsentioResponseError(f"{call.endpoint}: unexpected item shape: {exc}") from None


def batch_result(call: Call, value: Any) -> BatchResult:
    saved_key = call.saved_key or "saved"
    if not isinstance(value, dict):
        raise ConsentioResponseError(f"{call.endpoint}: expected a JSON object, got {json_kind(value)}")
    if saved_key not in value and "errors" not in value:
        # Read as "nothing saved, nothing rejected", such an answer would pass a batch that did nothing as done.
        raise ConsentioResponseError(
            f"{call.endpoint}: the answer has neither '{saved_key}' nor 'errors' "
            f"(keys: {', '.join(map(str, value)) or 'none'})"
        )
    saved = value.get(saved_key) or []
    errors = value.get("errors") or []
    if not isinstance(saved, list) or not isinstance(errors, list):
        raise ConsentioResponseError(f"{call.endpoint}: '{saved_key}' and 'errors' must be arrays")
    return BatchResult(saved=saved, errors=[RecordError.parse(message) for message in errors])


def of_kind(call: Call, value: Any, expected: type[list[Any]] | type[dict[str, Any]]) -> Any:
    """``value`` if it is a JSON array (``list``) or object (``dict``) as expected; else an error saying what it is."""
    if not isinstance(value, expected):
        wanted = "a JSON array" if expected is list else "a JSON object"
        raise ConsentioResponseError(f"{call.endpoint}: expected {wanted}, got {json_kind(value)}")
    return value


def json_kind(value: Any) -> str:
    """What a parsed JSON value is, in JSON's words (the reader of the error knows the API, not Python)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    kinds = ((dict, "an object"), (list, "an array"), (str, "a string"), (int | float | Decimal, "a number"))
    return next((kind for python_type, kind in kinds if isinstance(value, python_type)), type(value).__name__)


def rfc3339(value: datetime, name: str) -> str:
    if not isinstance(value, datetime):
        raise ConsentioConfigError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ConsentioConfigError(f"{name} must be timezone-aware (got naive {value.isoformat()})")
    utc = value.astimezone(UTC)
    fraction = f".{utc.microsecond:06d}" if utc.microsecond else ""
    return utc.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z"
