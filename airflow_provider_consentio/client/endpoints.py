"""The endpoint layer: every path, parameter, body and answer shape of the Partner API, in one I/O-free place.

Wire assumptions the docs leave open are marked ASSUMPTION here and in models.py; a confirmed schema drops in here
without touching the clients or the operators.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import cache
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import msgspec
from pydantic import BaseModel, ValidationError

import airflow_provider_consentio.client.shapes as shapes
from airflow_provider_consentio import resources
from airflow_provider_consentio.client.excerpt import excerpt
from airflow_provider_consentio.client.shapes import ListingShape
from airflow_provider_consentio.errors import ConsentioConfigError, ConsentioResponseError, ConsentioSchemaDriftError
from airflow_provider_consentio.models import (
    BatchResult,
    ExternalReference,
    OrderReferenceKeys,
    PurchaseNeed,
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
from airflow_provider_consentio.resources import Resource

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


# --- what each listing answers: the resources' declarations (resources/), as the shapes the client holds them to ---


def shape_of(resource: Resource) -> ListingShape:
    """The shape ``resource``'s listing answers are held to (the client's reading and ``consentio check``)."""
    return _shape_of(resource.name)


@cache
def _shape_of(name: str) -> ListingShape:
    resource = resources.by_name(name)
    read = resource.read
    if read is None:
        raise ConsentioConfigError(f"The Partner API does not list {resource.nouns}")
    return ListingShape(
        resource.nouns, read.key_struct, read.typed, read.documented_fields, read.envelope, windowed=read.windowed
    )


ORDERS = shape_of(resources.ORDERS)
EDITED_ORDERS = shape_of(resources.EDITED_ORDERS)
PURCHASE_NEEDS = shape_of(resources.PURCHASE_NEEDS)
PRODUCTS = shape_of(resources.PRODUCTS)
CLIENTS = shape_of(resources.CLIENTS)
ADDRESSES = shape_of(resources.ADDRESSES)
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

    # --- any declared resource (resources/): its listing and its batch write ------------------------------------

    def listing(
        self, resource: Resource, start: datetime | None = None, end: datetime | None = None, **params: Any
    ) -> Listing:
        """The request for ``resource``'s records: over ``[start, end)`` if its listing takes a window, with its
        other parameters (None: not given), each checked against the declaration before anything is sent."""
        read = resource.read
        given = resource.check_params(params)
        assert read is not None  # check_params refuses a resource without a listing
        query: dict[str, str] = {}
        if read.window is not None:
            if start is None or end is None:
                raise ConsentioConfigError(f"the {resource.nouns} listing needs a window [start, end)")
            # Formatted first: it refuses naive datetimes, which the comparison below would fail on with a TypeError.
            query[read.window[0]], query[read.window[1]] = rfc3339(start, "start"), rfc3339(end, "end")
            if end < start:
                raise ConsentioConfigError(
                    f"the window ends ({end.isoformat()}) before it starts ({start.isoformat()})"
                )
        elif start is not None or end is not None:
            raise ConsentioConfigError(f"the {resource.nouns} listing takes no time window")
        for name, value in given.items():
            query[name] = _parameter(read.params[name], value, name)
        return Listing(Call("GET", f"{self._ws}{read.path}", params=query or None), shape_of(resource))

    def write(self, resource: Resource, records: Sequence[Any]) -> Call:
        """The request that sends one batch of ``resource``'s validated records."""
        spec = resource.write
        if spec is None:
            raise ConsentioConfigError(f"The Partner API takes no writes of {resource.nouns}")
        if not records:
            raise ConsentioConfigError(f"a write of {resource.nouns} needs at least one record (the API requires one)")
        return Call(
            spec.method,
            f"{self._ws}{spec.path}",
            body=spec.body(records),
            saved_key=spec.saved_key,
            idempotent=spec.idempotent,
        )

    # --- seller orders -----------------------------------------------------------------------------------------

    def orders(self, start: datetime, end: datetime, kind: str, status: str | None) -> Listing:
        return self.listing(resources.ORDERS, start, end, kind=kind, status=status)

    def edited_orders(self, since: datetime) -> Listing:
        return self.listing(resources.EDITED_ORDERS, since=since)

    def external_references(self, references: Sequence[ExternalReference]) -> Call:
        return self.write(resources.EXTERNAL_REFERENCES, references)

    def mark_seen(self, hash_ids: Sequence[str]) -> Call:
        from airflow_provider_consentio.models import SeenOrder

        return self.write(resources.EDITED_ORDERS, [SeenOrder.model_construct(hash_id=hash_id) for hash_id in hash_ids])

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
        return self.write(resources.PURCHASE_NEEDS, _at_least_one(needs, "upsert_purchase_needs"))

    def purchase_needs(self, start_date: date, end_date: date, status: str | None) -> Listing:
        if end_date < start_date:
            raise ConsentioConfigError(f"end_date {end_date} is before start_date {start_date}")
        return self.listing(resources.PURCHASE_NEEDS, start_date=start_date, end_date=end_date, status=status or None)

    def promoted_order(self, order: PromotedOrder | Mapping[str, Any]) -> Call:
        # Creates an order: never repeated once the request may have reached the server (PROMOTED_ORDERS is not
        # idempotent). A mapping is sent as it is: the hostile-API tests send bodies no model would let through.
        if isinstance(order, PromotedOrder):
            return self.write(resources.PROMOTED_ORDERS, [order])
        spec = resources.PROMOTED_ORDERS.write
        assert spec is not None
        return Call(spec.method, f"{self._ws}{spec.path}", body=dict(order), idempotent=spec.idempotent)

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
        return self.write(resources.PRODUCTS, _at_least_one(products, "upsert_products"))

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
        write = resources.PRODUCTS.write
        assert write is not None
        return Call(
            write.method,
            f"{self._ws}{write.path}",
            params=params,
            content=content,
            content_type="text/csv",
            saved_key=write.saved_key,
        )

    def changed_products(self, start: datetime, end: datetime) -> Listing:
        return self.listing(resources.PRODUCTS, start, end)

    def base_prices(self, prices: Sequence[BasePrice]) -> Call:
        return self.write(resources.BASE_PRICES, _at_least_one(prices, "set_base_prices"))

    def sync_price_groups(self, rows: Sequence[PriceGroupPrice]) -> Call:
        return self.write(resources.PRICE_GROUPS, _at_least_one(rows, "sync_price_groups"))

    def clients(self) -> Listing:
        return self.listing(resources.CLIENTS)

    def upsert_clients(self, clients: Sequence[Client]) -> Call:
        return self.write(resources.CLIENTS, _at_least_one(clients, "upsert_clients"))

    def addresses(self, client_external_id: str | None = None) -> Listing:
        return self.listing(resources.ADDRESSES, client_external_id=client_external_id or None)

    def upsert_addresses(self, addresses: Sequence[ClientAddress]) -> Call:
        return self.write(resources.ADDRESSES, _at_least_one(addresses, "upsert_addresses"))


PROMOTED_ORDER_KIND = "sale"


def _parameter(kind: Any, value: Any, name: str) -> str:
    """A read parameter as the query sends it (see resources.Read's ``params``)."""
    if kind == "instant":
        return rfc3339(value, name)
    if kind == "date":
        if not isinstance(value, date) or isinstance(value, datetime):
            raise ConsentioConfigError(f"{name} must be a date, got {type(value).__name__}")
        return value.isoformat()
    return str(value)


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
