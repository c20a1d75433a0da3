"""The shoppers: a pool of customers made once per run with Faker (seeded), so no Faker
call happens per request."""

from __future__ import annotations

from dataclasses import dataclass

from faker import Faker

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
