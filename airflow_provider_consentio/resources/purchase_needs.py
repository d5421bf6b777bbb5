"""The buyer's purchase needs. ASSUMPTION: the listing's answer is ``{"purchase_needs": [...]}`` (the model page)
or a bare array (the guide); both are read."""

from __future__ import annotations

from airflow_provider_consentio.resources._declaration import MODELS, AssetName, Read, Resource, TableSpec, Write

PURCHASE_NEEDS = Resource(
    name="purchase_needs",
    noun="purchase need",
    nouns="purchase needs",
    lineage="purchase-needs",
    read=Read(
        path="/purchase-needs",
        keys=f"{MODELS}:PurchaseNeedKeys",
        typed={
            "start_date": "date",
            "end_date": "date",
            "quantity": "number",
            **dict.fromkeys(("created_at", "updated_at"), "timestamp"),
        },
        documented=f"{MODELS}:PurchaseNeed",
        envelope="purchase_needs",
        params={"start_date": "date", "end_date": "date", "status": None},
        required=("start_date", "end_date"),
        readers=("ConsentioExportPurchaseNeedsOperator",),
    ),
    # Idempotent: `code` is the idempotency key, so a repeated batch replaces records with the same values.
    write=Write(
        "POST",
        "/purchase-needs",
        model=f"{MODELS}:PurchaseNeed",
        key_field="code",
        body_key="purchase_needs",
        saved_key="purchase_needs",
        rejected_key_name="code",
        asset=AssetName("consentio_purchase_needs", "purchase-needs"),
    ),
    table=TableSpec(name="purchase_needs", key=("code",), model=f"{MODELS}:PurchaseNeed"),
)
