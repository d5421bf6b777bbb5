"""Wire models of the Consentio Partner API.

Orders are read leniently: every field is optional and unknown fields are kept, because the API documents no
required field and may add some. Exports never go through these models at all: they carry each order's exact
source text (:class:`RawRecord`), so nothing is dropped or rounded.

Write payloads are strict: purchase needs follow the documented field table, external references the working
assumptions below. Validation errors name the record (its ``code`` or ``hash_id``) and the field.

Working assumptions where the docs are silent (the client's endpoint layer holds the rest):
* PUT /order/external takes ``{"orders": [{hash_id, external_id, external_status, cancel}]}``; external_id is
  1..256 characters and external_status at most 32 (as for purchase needs).
* Batch write responses report per-record failures as ``"<code or hash_id>: <reason>"`` strings.
* A saved purchase need whose ``created_at`` equals its ``updated_at`` was created by this call; else updated.
* The catalogue's and promoted orders' models, with their assumptions, are in models/catalogue.py.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar, get_args

import msgspec
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from airflow_provider_consentio.models.write_fields import read_only

if TYPE_CHECKING:
    from airflow_provider_consentio.models.write_fields import DroppedFields

OrderKind = Literal["sale", "purchase"]
# The statuses GET /order can filter on ("draft" exists on orders but is not a documented filter).
OrderStatus = Literal["accepted", "pending", "canceled", "incomplete"]
QuantityUnit = Literal["box", "pallet", "kg", "piece", "unknown"]
TenderKind = Literal[
    "standard", "promotion", "regional_promotion", "weekend_flash_offer", "promotion_radio", "promotion_leaflet"
]
ORDER_KINDS: tuple[str, ...] = get_args(OrderKind)
ORDER_STATUSES: tuple[str, ...] = get_args(OrderStatus)
QUANTITY_UNITS: tuple[str, ...] = get_args(QuantityUnit)
TENDER_KINDS: tuple[str, ...] = get_args(TenderKind)

Text256 = Annotated[str, Field(min_length=1, max_length=256)]
Text64 = Annotated[str, Field(min_length=1, max_length=64)]
Text32 = Annotated[str, Field(min_length=1, max_length=32)]
ShortCode = Annotated[str | None, Field(max_length=20)]


class RawRecord(msgspec.Struct, frozen=True, gc=False):
    """One element of a list response: its exact source bytes (on one line) and the key fields read from it.

    ``raw`` is bytes-like (``bytes`` or ``msgspec.Raw``); ``keys`` has the fields as attributes (``keys.id``).
    """

    raw: Any
    keys: Any

    @property
    def data(self) -> dict[str, Any]:
        """Every field, parsed (numbers as exact Decimals). Costly: exports never need it."""
        from airflow_provider_consentio.models.jsonwire import loads

        value: dict[str, Any] = loads(bytes(self.raw))
        return value


# The key structs say what is read of each element of a list answer; the rest travels as raw bytes. They and
# RawRecord are created by the hundred thousand and hold no cycles: gc=False keeps them out of the garbage
# collector's passes, which otherwise cost an export a fifth of its time in a worker's large heap.
class OrderId(msgspec.Struct, gc=False):
    """What an export reads of each order (its ID, to de-duplicate)."""

    id: int


class EditedOrderKeys(msgspec.Struct, gc=False):
    """What the edited-orders flow reads of each order: its identity and version."""

    id: int
    hash_id: str
    updated_at: str


class PurchaseNeedKeys(msgspec.Struct, gc=False):
    code: str


# The catalogue's key structs name each record's own key ``id`` where an export de-duplicates on it.
class ProductKeys(msgspec.Struct, gc=False):
    id: str = msgspec.field(name="sku")


class ClientKeys(msgspec.Struct, gc=False):
    client_external_id: str


class AddressKeys(msgspec.Struct, gc=False):
    external_id: str


class OrderReferenceKeys(msgspec.Struct, gc=False):
    """What a promoted-order read-back reads of each order: its identity and the caller's reference."""

    hash_id: str
    external_id: str | None = None


# The documented ViewOrder fields (the model page); an order field outside these is new to the provider.
VIEW_ORDER_FIELDS = frozenset(
    (
        "id",
        "hash_id",
        "status",
        "buyer_id",
        "seller_id",
        "counterpart_id",
        "counterpart_id_buyer",
        "counterpart_id_seller",
        "external_id",
        "external_status",
        "external_id_buyer",
        "external_id_seller",
        "external_status_buyer",
        "external_status_seller",
        "created_at",
        "updated_at",
        "closed_at",
        "delivery_method",
        "delivery_estimated_at",
        "pickup_estimated_at",
        "deliver_to",
        "pickup_from",
        "currency",
        "price",
        "weight",
        "weight_unit",
        "more_info",
        "is_read",
        "items",
    )
)


class OrderItem(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: int | None = None
    product_id: int | None = None
    product_hash_id: str | None = None
    sku: str | None = None
    ean_code: str | None = None
    display_name: str | None = None
    amount: Decimal | None = None
    unit: str | None = None
    price: Decimal | None = None
    total_price: Decimal | None = None
    served_amount: Decimal | None = None
    prepared: bool | None = None


class Order(BaseModel):
    """A ViewOrder, read leniently (every field optional, unknown fields kept, numbers as exact Decimals)."""

    model_config = ConfigDict(extra="allow")

    id: int | None = None
    hash_id: str | None = None
    status: str | None = None
    counterpart_id: str | None = None
    external_id: str | None = None
    external_status: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    currency: str | None = None
    price: Decimal | None = None
    items: list[OrderItem] = Field(default_factory=list)


class Session(BaseModel):
    """The login response. Only ``access_token`` is required; the workspace metadata keys are undocumented."""

    model_config = ConfigDict(extra="allow")

    access_token: str = Field(min_length=1, repr=False)
    refresh_token: str | None = Field(default=None, repr=False)
    expires_in: float | None = None
    workspace: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class RecordError:
    """A per-record failure reported by a batch write (HTTP 200 partial success)."""

    key: str | None
    reason: str

    @classmethod
    def parse(cls, message: Any, keys: Container[str] = frozenset()) -> RecordError:
        """A rejection as the API words it, ``"<key>: <reason>"``.

        A key may itself hold spaces or ": ", so splitting at the first ": " would lose or truncate it: given the
        keys that were sent, the longest of them the message starts with is the one meant. Otherwise (the client,
        which does not know them) a first part without spaces is taken for the key.
        """
        text = str(message)
        key, sep, reason = text.partition(": ")
        parsed = cls(key=key, reason=reason) if sep and key and " " not in key else cls(key=None, reason=text)
        position = text.find(": ")
        while position != -1:
            if text[:position] in keys:
                parsed = cls(key=text[:position], reason=text[position + 2 :])
            position = text.find(": ", position + 1)
        return parsed

    def __str__(self) -> str:
        return f"{self.key}: {self.reason}" if self.key else self.reason


@dataclass(frozen=True)
class BatchResult:
    """What a batch write returned: the saved records and the per-record errors."""

    saved: list[dict[str, Any]] = field(default_factory=list)
    errors: list[RecordError] = field(default_factory=list)


def _iso_date(value: Any) -> Any:
    """Accept a date or an ISO ``YYYY-MM-DD`` string; not a datetime, a timestamp number or another format."""
    if isinstance(value, datetime):
        raise ValueError("must be a date (YYYY-MM-DD), not a date-time")
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value) if len(value) == 10 else _reject_date(value)
        except ValueError:
            _reject_date(value)
    raise ValueError(f"must be a date in YYYY-MM-DD form, got {type(value).__name__}")


def _reject_date(value: str) -> Any:
    raise ValueError(f"must be a date in YYYY-MM-DD form, got {value!r}")


def _exact_number(value: Any) -> Any:
    """Numbers become exact Decimals; strings (CSV) are parsed; floats keep their shortest decimal form."""
    if isinstance(value, bool) or value is None:
        raise ValueError("must be a number")
    if isinstance(value, float):
        value = repr(value)
    try:
        number = Decimal(str(value).strip()) if not isinstance(value, Decimal) else value
    except InvalidOperation:
        raise ValueError(f"must be a number, got {value!r}") from None
    if not number.is_finite():
        raise ValueError(f"must be a finite number, got {value!r}")
    return number


IsoDate = Annotated[date, BeforeValidator(_iso_date)]
ExactNumber = Annotated[Decimal, BeforeValidator(_exact_number)]


class PurchaseNeed(BaseModel):
    """A buyer's purchase need, validated per the documented field table.

    ``id``, ``created_at`` and ``updated_at`` are read-only: accepted on input (so an exported file can be sent
    again) but never sent.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: Text256
    reference_code: Text256
    start_date: IsoDate
    end_date: IsoDate
    quantity: Annotated[ExactNumber, Field(ge=0)]
    quantity_unit: QuantityUnit
    external_status: Text32
    storage_location_code: ShortCode = None
    delivery_address_code: ShortCode = None
    logistics_unit_code: ShortCode = None
    tender_kind: TenderKind | None = None
    metadata: dict[str, Any] | None = None
    id: int | None = read_only()
    created_at: str | None = read_only()
    updated_at: str | None = read_only()

    @field_validator("end_date")
    @classmethod
    def _window_is_ordered(cls, end_date: date, info: ValidationInfo) -> date:
        # A field validator, not a model one, so this is reported together with other field errors.
        start_date = info.data.get("start_date")
        if start_date is not None and end_date < start_date:
            raise ValueError(f"is before start_date {start_date}")
        return end_date

    def to_wire(self) -> dict[str, Any]:
        """The request form: dates as ISO strings, Decimals kept exact, unset optional fields left out."""
        body = self.model_dump(exclude_none=True)
        body["start_date"] = self.start_date.isoformat()
        body["end_date"] = self.end_date.isoformat()
        return body


class ExternalReference(BaseModel):
    """One order's ERP reference to push back with PUT /order/external (see the module's assumptions)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    hash_id: Text64
    external_id: Text256 | None = None
    external_status: Text32 | None = None
    cancel: bool = False

    @model_validator(mode="after")
    def _changes_something(self) -> ExternalReference:
        if self.external_id is None and self.external_status is None and not self.cancel:
            raise ValueError("sets nothing: give external_id, external_status or cancel=true")
        return self

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump()


class SeenOrder(BaseModel):
    """An edited order to acknowledge: its hash ID and, when known, the version (``updated_at``) processed."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    hash_id: Text64
    updated_at: str | None = None


def saved_was_created(record: Mapping[str, Any]) -> bool:
    """ASSUMPTION: a saved purchase need was created by this call when its created_at equals its updated_at."""
    created_at = record.get("created_at")
    return created_at is not None and created_at == record.get("updated_at")


@dataclass(frozen=True)
class RecordProblem:
    """Why one input record was rejected before sending. ``key`` is its code/hash_id, or its position."""

    key: str
    reasons: list[str]

    def __str__(self) -> str:
        return f"{self.key}: {'; '.join(self.reasons)}"


ModelT = TypeVar("ModelT", bound=BaseModel)


def validate_records(
    model: type[ModelT],
    records: Iterable[Mapping[str, Any]],
    key_field: str,
    source: str = "record",
    dropped: DroppedFields | None = None,
) -> tuple[list[ModelT], list[RecordProblem]]:
    """Validate every record; return the valid models and one problem per invalid record (none is skipped).

    A record is named by its ``key_field`` value when it has a usable one, else by its position in the input.
    Read-only and unknown fields are left out first (write_fields.py) and counted in ``dropped``; an unknown field
    named like a known one is a problem of its record (a misspelling).
    """
    from airflow_provider_consentio.models.write_fields import DroppedFields, sent_fields

    dropped = dropped if dropped is not None else DroppedFields()
    valid: list[ModelT] = []
    problems: list[RecordProblem] = []
    for position, record in enumerate(records, start=1):
        name = _record_name(record, key_field, f"{source} #{position}")
        if not isinstance(record, Mapping):
            problems.append(RecordProblem(name, [f"is not an object (got {type(record).__name__})"]))
            continue
        fields, misspelled = sent_fields(model, record, dropped)
        try:
            validated = model.model_validate(fields)
        except ValidationError as exc:
            problems.append(RecordProblem(name, misspelled + [_describe_error(err) for err in exc.errors()]))
            continue
        if misspelled:
            problems.append(RecordProblem(name, misspelled))
        else:
            valid.append(validated)
    return valid, problems


def _record_name(record: Any, key_field: str, fallback: str) -> str:
    key = record.get(key_field) if isinstance(record, Mapping) else None
    return key if isinstance(key, str) and key.strip() else fallback


def _describe_error(error: Any) -> str:
    location = ".".join(str(part) for part in error.get("loc", ()))
    message = str(error.get("msg", "is invalid")).removeprefix("Value error, ")
    if error.get("type") == "extra_forbidden":
        message = "is not a known field"
    elif error.get("type") == "missing":
        message = "is required"
    elif error.get("type") == "literal_error":
        message = f"{message}, got {error.get('input')!r}"
    message = message[:1].lower() + message[1:]
    return f"{location} {message}" if location else message
