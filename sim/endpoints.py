"""What each kind of request does, step by step, in the storefront."""

from __future__ import annotations

from dataclasses import dataclass

APP, DB_READ, DB_WRITE, INVENTORY, RECOMMENDATIONS, GATEWAY = range(6)
DB_STEPS = (DB_READ, DB_WRITE)


@dataclass(frozen=True)
class Endpoint:
    name: str
    method: str
    path: str
    service: str
    app_ms_median: float
    steps: tuple[int, ...]
    alloc_mb: float
    writes: bool = False
    leaky: bool = False
    # (first, last) step index of a database transaction that holds one pooled connection
    # from its first query to its last (Spring @Transactional), or None
    transaction: tuple[int, int] | None = None


ENDPOINTS: dict[str, Endpoint] = {
    e.name: e
    for e in (
        Endpoint("home", "GET", "/", "storefront-web", 110,
                 (APP, DB_READ, RECOMMENDATIONS, APP), 1.6),
        Endpoint("search", "GET", "/api/search", "catalog-service", 140,
                 (APP, DB_READ, DB_READ, APP), 2.0),
        Endpoint("product", "GET", "/api/products/{sku}", "catalog-service", 100,
                 (APP, DB_READ, INVENTORY, RECOMMENDATIONS, APP), 1.8),
        Endpoint("cart", "POST", "/api/cart/items", "cart-service", 90,
                 (APP, DB_READ, INVENTORY, DB_WRITE, APP), 1.4, writes=True),
        Endpoint("checkout", "POST", "/api/checkout", "checkout-service", 100,
                 (APP, DB_READ, INVENTORY, DB_WRITE, GATEWAY, DB_WRITE, APP), 2.4,
                 writes=True, leaky=True, transaction=(3, 5)),
    )
}
ENDPOINT_ORDER = ("home", "search", "product", "cart", "checkout")
