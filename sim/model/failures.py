"""The ways a request can fail, as a Java storefront behind nginx would log them.

Each failure kind carries the HTTP status the client sees, the exception class, the message
text real systems print, a short stack trace, the component and a severity. Messages quote
the configured limits (timeouts, pool sizes) so they match the model's numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

from sim.config import StorefrontConfig


@dataclass(frozen=True)
class Failure:
    kind: str
    status_code: int
    error_type: str
    message: str
    stack_trace: str
    component: str
    severity: str


def _stack(*frames: str) -> str:
    return "\n".join(f"\tat {f}" for f in frames)


# kind -> (HTTP status, exception class, message, stack frames, component, severity). A
# message quotes the configured limits as {placeholders}, filled by ``build_catalog``.
CATALOG: dict[str, tuple[int, str, str, tuple[str, ...], str, str]] = {
    "gateway_timeout": (
        504, "com.storefront.payment.PaymentGatewayTimeoutException",
        "Payment gateway did not respond within {gateway_read_timeout_ms:.0f} ms "
        "(POST https://api.paygate.example/v2/charges): "
        "java.net.SocketTimeoutException: Read timed out",
        ("java.base/java.net.SocketInputStream.socketRead0(Native Method)",
         "org.apache.hc.core5.http.impl.io.SessionInputBufferImpl.fillBuffer(SessionInputBufferImpl.java:149)",
         "com.storefront.payment.PayGateClient.charge(PayGateClient.java:118)",
         "com.storefront.checkout.CheckoutService.placeOrder(CheckoutService.java:212)",
         "com.storefront.checkout.CheckoutController.checkout(CheckoutController.java:64)"),
        "payment-client", "ERROR"),
    "gateway_error": (
        502, "com.storefront.payment.PaymentGatewayException",
        "Payment gateway returned HTTP 503 Service Unavailable after {gateway_attempts} attempts "
        "(POST https://api.paygate.example/v2/charges)",
        ("com.storefront.payment.PayGateClient.handleResponse(PayGateClient.java:167)",
         "com.storefront.payment.PayGateClient.charge(PayGateClient.java:121)",
         "com.storefront.checkout.CheckoutService.placeOrder(CheckoutService.java:212)",
         "com.storefront.checkout.CheckoutController.checkout(CheckoutController.java:64)"),
        "payment-client", "ERROR"),
    "breaker_open": (
        503, "io.github.resilience4j.circuitbreaker.CallNotPermittedException",
        "CircuitBreaker 'paymentGateway' is OPEN and does not permit further calls",
        ("io.github.resilience4j.circuitbreaker.CallNotPermittedException.createCallNotPermittedException(CallNotPermittedException.java:48)",
         "io.github.resilience4j.circuitbreaker.internal.CircuitBreakerStateMachine$OpenState.acquirePermission(CircuitBreakerStateMachine.java:696)",
         "com.storefront.payment.ResilientPaymentClient.charge(ResilientPaymentClient.java:52)",
         "com.storefront.checkout.CheckoutService.placeOrder(CheckoutService.java:212)"),
        "circuit-breaker", "ERROR"),
    "card_declined": (
        402, "com.storefront.payment.CardDeclinedException",
        "Card declined by issuer: insufficient_funds (decline_code=51)",
        ("com.storefront.payment.PayGateClient.handleResponse(PayGateClient.java:158)",
         "com.storefront.payment.PayGateClient.charge(PayGateClient.java:121)",
         "com.storefront.checkout.CheckoutService.placeOrder(CheckoutService.java:212)"),
        "payment-client", "WARN"),
    "db_pool_timeout": (
        500, "java.sql.SQLTransientConnectionException",
        "HikariPool-1 - Connection is not available, request timed out after "
        "{db_connection_timeout_ms:.0f}ms.",
        ("com.zaxxer.hikari.pool.HikariPool.createTimeoutException(HikariPool.java:696)",
         "com.zaxxer.hikari.pool.HikariPool.getConnection(HikariPool.java:181)",
         "com.zaxxer.hikari.HikariDataSource.getConnection(HikariDataSource.java:100)",
         "org.springframework.jdbc.datasource.DataSourceUtils.fetchConnection(DataSourceUtils.java:159)",
         "com.storefront.repository.JdbcRepository.query(JdbcRepository.java:88)"),
        "db-pool", "ERROR"),
    "db_deadlock": (
        500, "org.postgresql.util.PSQLException",
        "ERROR: deadlock detected. Detail: Process 48213 waits for ShareLock on transaction "
        "9281733; blocked by process 48190.",
        ("org.postgresql.core.v3.QueryExecutorImpl.receiveErrorResponse(QueryExecutorImpl.java:2713)",
         "org.postgresql.jdbc.PgPreparedStatement.executeUpdate(PgPreparedStatement.java:152)",
         "com.zaxxer.hikari.pool.HikariProxyPreparedStatement.executeUpdate(HikariProxyPreparedStatement.java)",
         "com.storefront.repository.OrderRepository.save(OrderRepository.java:74)"),
        "database", "ERROR"),
    "validation": (
        400, "org.springframework.web.bind.MethodArgumentNotValidException",
        "Validation failed for argument [0]: [Field error in object 'request' on field "
        "'quantity': rejected value [0]; must be greater than or equal to 1]",
        ("org.springframework.web.method.annotation.ModelAttributeMethodProcessor.resolveArgument(ModelAttributeMethodProcessor.java:170)",
         "org.springframework.web.servlet.mvc.method.annotation.RequestResponseBodyMethodProcessor.resolveArgument(RequestResponseBodyMethodProcessor.java:141)",
         "org.springframework.web.method.support.InvocableHandlerMethod.getMethodArgumentValues(InvocableHandlerMethod.java:179)"),
        "web", "WARN"),
    "not_found": (
        404, "com.storefront.catalog.ProductNotFoundException",
        "Product not found: sku=SKU-404-DISCONTINUED",
        ("com.storefront.catalog.ProductService.getProduct(ProductService.java:57)",
         "com.storefront.catalog.ProductController.get(ProductController.java:41)"),
        "catalog", "WARN"),
    "internal": (
        500, "java.lang.NullPointerException",
        'Cannot invoke "com.storefront.cart.CartItem.getPrice()" because "item" is null',
        ("com.storefront.cart.PriceCalculator.subtotal(PriceCalculator.java:33)",
         "com.storefront.cart.CartService.summary(CartService.java:96)",
         "com.storefront.web.StorefrontController.render(StorefrontController.java:77)"),
        "web", "ERROR"),
    "inventory_timeout": (
        504, "org.springframework.web.client.ResourceAccessException",
        'I/O error on GET request for "http://inventory-service:8080/api/v1/stock": '
        "Read timed out (timeout={inventory_timeout_ms:.0f}ms)",
        ("org.springframework.web.client.RestTemplate.doExecute(RestTemplate.java:791)",
         "org.springframework.web.client.RestTemplate.getForObject(RestTemplate.java:380)",
         "com.storefront.inventory.InventoryClient.stockLevel(InventoryClient.java:45)"),
        "inventory-client", "ERROR"),
    "recommendations_timeout": (
        504, "org.springframework.web.client.ResourceAccessException",
        'I/O error on GET request for "http://recommendation-service:8080/api/v1/recommendations": '
        "Read timed out (timeout={recommendations_timeout_ms:.0f}ms)",
        ("org.springframework.web.client.RestTemplate.doExecute(RestTemplate.java:791)",
         "org.springframework.web.client.RestTemplate.getForObject(RestTemplate.java:380)",
         "com.storefront.reco.RecommendationClient.forProduct(RecommendationClient.java:52)"),
        "recommendations-client", "ERROR"),
    "queue_rejected": (
        503, "java.util.concurrent.RejectedExecutionException",
        "Executor rejected request: all {worker_threads} worker threads busy and accept "
        "queue full ({accept_queue})",
        ("org.apache.tomcat.util.threads.ThreadPoolExecutor.execute(ThreadPoolExecutor.java:1365)",
         "org.apache.tomcat.util.net.AbstractEndpoint.processSocket(AbstractEndpoint.java:1198)"),
        "worker-pool", "ERROR"),
    "lb_timeout": (
        504, "UpstreamTimeout",
        "upstream timed out (110: Connection timed out) while reading response header from "
        "upstream",
        (), "load-balancer", "ERROR"),
    "instance_crash": (
        502, "UpstreamPrematureClose",
        "upstream prematurely closed connection while reading response header from upstream",
        (), "load-balancer", "ERROR"),
    "upstream_refused": (
        502, "UpstreamConnectError",
        "connect() failed (111: Connection refused) while connecting to upstream",
        (), "load-balancer", "ERROR"),
    "no_instance": (
        503, "NoLiveUpstreams", "no live upstreams while connecting to upstream", (),
        "load-balancer", "ERROR"),
    "oom": (
        500, "java.lang.OutOfMemoryError", "Java heap space",
        ("java.base/java.util.Arrays.copyOf(Arrays.java:3537)",
         "java.base/java.util.ArrayList.grow(ArrayList.java:237)",
         "com.storefront.checkout.OrderAuditTrail.record(OrderAuditTrail.java:61)",
         "com.storefront.checkout.CheckoutService.placeOrder(CheckoutService.java:230)"),
        "jvm", "CRITICAL"),
}


def build_catalog(cfg: StorefrontConfig) -> dict[str, Failure]:
    """All failure kinds for one storefront configuration: its limits put into the messages."""
    limits = {
        "gateway_read_timeout_ms": cfg.payment_gateway.read_timeout_ms,
        "gateway_attempts": cfg.payment_gateway.max_retries + 1,
        "db_connection_timeout_ms": cfg.db_pool.connection_timeout_ms,
        "inventory_timeout_ms": cfg.inventory.timeout_ms,
        "recommendations_timeout_ms": cfg.recommendations.timeout_ms,
        "worker_threads": cfg.worker_threads,
        "accept_queue": cfg.accept_queue,
    }
    return {
        kind: Failure(kind, status, error_type, message.format(**limits), _stack(*frames),
                      component, severity)
        for kind, (status, error_type, message, frames, component, severity) in CATALOG.items()
    }


# Background (everyday) failures and the endpoints they can happen on.
BACKGROUND_KINDS: dict[str, tuple[str, ...]] = {
    "validation": ("search", "cart", "checkout"),
    "not_found": ("product",),
    "db_deadlock": ("cart", "checkout"),
    "internal": ("home", "search", "product", "cart", "checkout"),
}


class RequestFailure(Exception):
    """Raised into a request's process where it fails; ``kind`` names its catalogue entry."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind

