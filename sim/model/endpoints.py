"""What each kind of request does: one generator process per endpoint, read top to bottom.

A handler runs on a worker thread of an app instance (``app``) and spends its time where
the code it models does: on a CPU core (``app.work``), on a pooled DB connection and the
shared database (``app.read``/``app.write``), waiting for an internal service
(``app.call``) or the payment gateway (``app.charge``). A failure is an exception raised
where it happens (``RequestFailure``); the instance turns it into the HTTP answer.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sim.model.app_instance import AppInstance
    from sim.model.request import Request

Process = Generator[Any, Any, None]


def home(app: AppInstance, req: Request) -> Process:
    """GET / : the storefront's landing page."""
    yield from app.work(req)  # session, controller (fails on a bad request)
    yield from app.read(req)  # featured products
    yield from app.call(req, app.recommendations)  # "picked for you"
    yield from app.work(req)  # render the page


def search(app: AppInstance, req: Request) -> Process:
    """GET /api/search"""
    yield from app.work(req)  # parse and validate the query
    yield from app.read(req)  # full-text match
    yield from app.read(req)  # facets
    flags = app.flags
    if flags.search_personalization and flags.serves(
            "search_personalization", flags.search_personalization, req.customer.customer_id):
        yield from app.work(req)  # re-rank for this shopper
    yield from app.work(req)  # rank and serialize


def product(app: AppInstance, req: Request) -> Process:
    """GET /api/products/{sku}"""
    yield from app.work(req)
    yield from app.read(req)  # the product row (404 when it does not exist)
    yield from app.call(req, app.inventory)  # stock level
    yield from app.call(req, app.recommendations)  # "customers also bought"
    flags = app.flags
    if flags.recommended_for_you and flags.serves(
            "recommended_for_you", flags.recommended_for_you, req.customer.customer_id):
        yield from app.call(req, app.recommendations)  # the "recommended for you" widget
    yield from app.work(req)


def add_to_cart(app: AppInstance, req: Request) -> Process:
    """POST /api/cart/items"""
    yield from app.work(req)  # validate the item
    yield from app.read(req)  # the cart
    yield from app.call(req, app.inventory)  # is it in stock?
    yield from app.write(req)  # INSERT the cart line (may deadlock)
    yield from app.work(req)


def place_order(app: AppInstance, req: Request) -> Process:
    """POST /api/checkout: CheckoutService.placeOrder, @Transactional.

    The order's transaction takes one pooled connection at its first statement and keeps
    it until commit, across the payment call: a slow gateway starves the pool."""
    yield from app.work(req)  # validate the cart, price it
    yield from app.read(req)  # load the cart
    yield from app.call(req, app.inventory)  # reserve the stock
    connection = app.db_pool.request()
    began = app.env.now
    try:
        yield from app.connect(req, connection)
        yield from app.write(req, connection)  # INSERT INTO orders (may deadlock)
        flags = app.flags
        if flags.checkout_fraud_check and flags.serves(
                "checkout_fraud_check", flags.checkout_fraud_check, req.customer.customer_id):
            yield from app.query(req)  # SELECT the fraud score, in the same transaction
        yield from app.charge(req)  # POST /v2/charges, connection still held
        yield from app.write(req, connection)  # UPDATE orders SET status = 'PAID'; COMMIT
    finally:
        app.db_pool.release(connection)
        app.committed(req, began)
    yield from app.work(req)  # the confirmation


@dataclass(frozen=True)
class Endpoint:
    name: str
    method: str
    path: str
    service: str
    app_ms_median: float  # median CPU time of one ``app.work`` step
    handler: Callable[[AppInstance, Request], Process]
    alloc_mb: float  # heap allocated per request
    leaky: bool = False  # the code path a memory_leak fault leaks on


ENDPOINTS: dict[str, Endpoint] = {
    e.name: e
    for e in (
        Endpoint("home", "GET", "/", "storefront-web", 110, home, 1.6),
        Endpoint("search", "GET", "/api/search", "catalog-service", 140, search, 2.0),
        Endpoint("product", "GET", "/api/products/{sku}", "catalog-service", 100, product, 1.8),
        Endpoint("cart", "POST", "/api/cart/items", "cart-service", 90, add_to_cart, 1.4),
        Endpoint("checkout", "POST", "/api/checkout", "checkout-service", 100, place_order, 2.4,
                 leaky=True),
    )
}
ENDPOINT_ORDER = ("home", "search", "product", "cart", "checkout")
