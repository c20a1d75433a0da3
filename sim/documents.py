"""Turns finished requests and samples into OpenSearch documents.

Customer data comes from a pool made once per run with Faker (seeded), so no Faker call
happens per event. IDs come from a seeded ``random.Random``; timestamps from the segment's
origin, never from the wall clock.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from faker import Faker

from sim.clock import TimestampFormatter
from sim.endpoints import Endpoint
from sim.failures import Failure

PAYMENT_METHODS = ("credit_card", "credit_card", "credit_card", "debit_card", "paypal", "apple_pay")
CURRENCY_BY_COUNTRY = {"GB": "GBP", "DE": "EUR", "FR": "EUR", "ES": "EUR", "IT": "EUR",
                       "NL": "EUR", "CA": "CAD", "AU": "AUD", "JP": "JPY"}
COUNTRIES = ("US", "US", "US", "US", "GB", "DE", "FR", "CA", "AU", "NL", "ES", "IT", "JP")


@dataclass(frozen=True)
class Customer:
    customer_id: str
    country: str
    currency: str
    client_ip: str
    user_agent: str


def make_customer_pool(seed: int, size: int) -> list[Customer]:
    """Faker-generated shoppers, identical for a given seed."""
    fake = Faker()
    fake.seed_instance(seed)
    pool = []
    for i in range(size):
        country = COUNTRIES[fake.random_int(0, len(COUNTRIES) - 1)]
        pool.append(
            Customer(
                customer_id=f"CUST-{fake.bothify('??').upper()}{i:06d}",
                country=country,
                currency=CURRENCY_BY_COUNTRY.get(country, "USD"),
                client_ip=fake.ipv4_public(),
                user_agent=fake.user_agent(),
            )
        )
    return pool


class DocumentFactory:
    """Builds transaction, error and metric documents for one segment."""

    def __init__(self, origin_epoch_ms: int, id_seed: int):
        self.origin_ms = origin_epoch_ms
        self.ts = TimestampFormatter()
        self.ids = random.Random(id_seed)

    def timestamp(self, sim_s: float) -> str:
        return self.ts(self.origin_ms + int(round(sim_s * 1000.0)))

    def new_trace(self) -> tuple[str, str]:
        bits = self.ids.getrandbits(192)
        return f"{bits >> 64:032x}", f"{bits & 0xFFFFFFFFFFFFFFFF:016x}"

    def transaction(
        self,
        *,
        start_s: float,
        trace_id: str,
        transaction_id: str,
        session_id: str,
        customer: Customer,
        endpoint: Endpoint,
        host: str,
        status_code: int,
        response_ms: float,
        timing: dict[str, float],
        order: dict[str, Any] | None,
    ) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "@timestamp": self.timestamp(start_s),
            "event_type": "transaction",
            "transaction_id": transaction_id,
            "trace_id": trace_id,
            "session_id": session_id,
            "customer_id": customer.customer_id,
            "service": endpoint.service,
            "host": host,
            "endpoint": endpoint.name,
            "http": {"method": endpoint.method, "path": endpoint.path, "status_code": status_code},
            "status": "success" if status_code < 400 else "error",
            "response_time_ms": round(response_ms, 1),
            "timing": timing,
            "client": {"ip": customer.client_ip, "country": customer.country,
                       "user_agent": customer.user_agent},
        }
        if order is not None:
            doc["order"] = order
        return doc

    def error(
        self,
        *,
        at_s: float,
        trace_id: str,
        transaction_id: str,
        endpoint: Endpoint,
        host: str,
        failure: Failure,
        status_code: int,
    ) -> dict[str, Any]:
        return {
            "@timestamp": self.timestamp(at_s),
            "event_type": "error",
            "transaction_id": transaction_id,
            "trace_id": trace_id,
            "service": endpoint.service,
            "host": host,
            "endpoint": endpoint.name,
            "http": {"method": endpoint.method, "path": endpoint.path, "status_code": status_code},
            "status": "error",
            "component": failure.component,
            "severity": failure.severity,
            "error": {"type": failure.error_type, "message": failure.message,
                      "stack_trace": f"{failure.error_type}: {failure.message}\n{failure.stack_trace}"
                      if failure.stack_trace else f"{failure.error_type}: {failure.message}"},
        }

    def order(self, rng_random: Any, customer: Customer, order_seq: int, day: str) -> dict[str, Any]:
        items = 1 + int(rng_random() * 4)
        amount = 0.0
        for _ in range(items):
            amount += 8.0 + 110.0 * rng_random() ** 2
        method = PAYMENT_METHODS[int(rng_random() * len(PAYMENT_METHODS))]
        return {
            "order_id": f"ORD-{day}-{order_seq:07d}",
            "amount": round(amount, 2),
            "currency": customer.currency,
            "items": items,
            "payment_method": method,
        }
