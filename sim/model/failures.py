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


def build_catalog(cfg: StorefrontConfig) -> dict[str, Failure]:
    """All failure kinds for one storefront configuration."""
    gw = cfg.payment_gateway
    pool = cfg.db_pool
    attempts = gw.max_retries + 1
    entries = [
        Failure(
            "gateway_timeout", 504, "com.storefront.payment.PaymentGatewayTimeoutException",
            f"Payment gateway did not respond within {gw.read_timeout_ms:.0f} ms "
            "(POST https://api.paygate.example/v2/charges): "
            "java.net.SocketTimeoutException: Read timed out",
            _stack("java.base/java.net.SocketInputStream.socketRead0(Native Method)",
                   "org.apache.hc.core5.http.impl.io.SessionInputBufferImpl.fillBuffer(SessionInputBufferImpl.java:149)",
                   "com.storefront.payment.PayGateClient.charge(PayGateClient.java:118)",
                   "com.storefront.checkout.CheckoutService.placeOrder(CheckoutService.java:212)",
                   "com.storefront.checkout.CheckoutController.checkout(CheckoutController.java:64)"),
            "payment-client", "ERROR"),
        Failure(
            "gateway_error", 502, "com.storefront.payment.PaymentGatewayException",
            f"Payment gateway returned HTTP 503 Service Unavailable after {attempts} attempts "
            "(POST https://api.paygate.example/v2/charges)",
            _stack("com.storefront.payment.PayGateClient.handleResponse(PayGateClient.java:167)",
                   "com.storefront.payment.PayGateClient.charge(PayGateClient.java:121)",
                   "com.storefront.checkout.CheckoutService.placeOrder(CheckoutService.java:212)",
                   "com.storefront.checkout.CheckoutController.checkout(CheckoutController.java:64)"),
            "payment-client", "ERROR"),
        Failure(
            "breaker_open", 503, "io.github.resilience4j.circuitbreaker.CallNotPermittedException",
            "CircuitBreaker 'paymentGateway' is OPEN and does not permit further calls",
            _stack("io.github.resilience4j.circuitbreaker.CallNotPermittedException.createCallNotPermittedException(CallNotPermittedException.java:48)",
                   "io.github.resilience4j.circuitbreaker.internal.CircuitBreakerStateMachine$OpenState.acquirePermission(CircuitBreakerStateMachine.java:696)",
                   "com.storefront.payment.ResilientPaymentClient.charge(ResilientPaymentClient.java:52)",
                   "com.storefront.checkout.CheckoutService.placeOrder(CheckoutService.java:212)"),
            "circuit-breaker", "ERROR"),
        Failure(
            "card_declined", 402, "com.storefront.payment.CardDeclinedException",
            "Card declined by issuer: insufficient_funds (decline_code=51)",
            _stack("com.storefront.payment.PayGateClient.handleResponse(PayGateClient.java:158)",
                   "com.storefront.payment.PayGateClient.charge(PayGateClient.java:121)",
                   "com.storefront.checkout.CheckoutService.placeOrder(CheckoutService.java:212)"),
            "payment-client", "WARN"),
        Failure(
            "db_pool_timeout", 500, "java.sql.SQLTransientConnectionException",
            f"HikariPool-1 - Connection is not available, request timed out after "
            f"{pool.connection_timeout_ms:.0f}ms.",
            _stack("com.zaxxer.hikari.pool.HikariPool.createTimeoutException(HikariPool.java:696)",
                   "com.zaxxer.hikari.pool.HikariPool.getConnection(HikariPool.java:181)",
                   "com.zaxxer.hikari.HikariDataSource.getConnection(HikariDataSource.java:100)",
                   "org.springframework.jdbc.datasource.DataSourceUtils.fetchConnection(DataSourceUtils.java:159)",
                   "com.storefront.repository.JdbcRepository.query(JdbcRepository.java:88)"),
            "db-pool", "ERROR"),
        Failure(
            "db_deadlock", 500, "org.postgresql.util.PSQLException",
            "ERROR: deadlock detected. Detail: Process 48213 waits for ShareLock on transaction "
            "9281733; blocked by process 48190.",
            _stack("org.postgresql.core.v3.QueryExecutorImpl.receiveErrorResponse(QueryExecutorImpl.java:2713)",
                   "org.postgresql.jdbc.PgPreparedStatement.executeUpdate(PgPreparedStatement.java:152)",
                   "com.zaxxer.hikari.pool.HikariProxyPreparedStatement.executeUpdate(HikariProxyPreparedStatement.java)",
                   "com.storefront.repository.OrderRepository.save(OrderRepository.java:74)"),
            "database", "ERROR"),
        Failure(
            "validation", 400, "org.springframework.web.bind.MethodArgumentNotValidException",
            "Validation failed for argument [0]: [Field error in object 'request' on field "
            "'quantity': rejected value [0]; must be greater than or equal to 1]",
            _stack("org.springframework.web.method.annotation.ModelAttributeMethodProcessor.resolveArgument(ModelAttributeMethodProcessor.java:170)",
                   "org.springframework.web.servlet.mvc.method.annotation.RequestResponseBodyMethodProcessor.resolveArgument(RequestResponseBodyMethodProcessor.java:141)",
                   "org.springframework.web.method.support.InvocableHandlerMethod.getMethodArgumentValues(InvocableHandlerMethod.java:179)"),
            "web", "WARN"),
        Failure(
            "not_found", 404, "com.storefront.catalog.ProductNotFoundException",
            "Product not found: sku=SKU-404-DISCONTINUED",
            _stack("com.storefront.catalog.ProductService.getProduct(ProductService.java:57)",
                   "com.storefront.catalog.ProductController.get(ProductController.java:41)"),
            "catalog", "WARN"),
        Failure(
            "internal", 500, "java.lang.NullPointerException",
            'Cannot invoke "com.storefront.cart.CartItem.getPrice()" because "item" is null',
            _stack("com.storefront.cart.PriceCalculator.subtotal(PriceCalculator.java:33)",
                   "com.storefront.cart.CartService.summary(CartService.java:96)",
                   "com.storefront.web.StorefrontController.render(StorefrontController.java:77)"),
            "web", "ERROR"),
        Failure(
            "inventory_timeout", 504, "org.springframework.web.client.ResourceAccessException",
            f'I/O error on GET request for "http://inventory-service:8080/api/v1/stock": '
            f"Read timed out (timeout={cfg.inventory.timeout_ms:.0f}ms)",
            _stack("org.springframework.web.client.RestTemplate.doExecute(RestTemplate.java:791)",
                   "org.springframework.web.client.RestTemplate.getForObject(RestTemplate.java:380)",
                   "com.storefront.inventory.InventoryClient.stockLevel(InventoryClient.java:45)"),
            "inventory-client", "ERROR"),
        Failure(
            "recommendations_timeout", 504, "org.springframework.web.client.ResourceAccessException",
            f'I/O error on GET request for "http://recommendation-service:8080/api/v1/recommendations": '
            f"Read timed out (timeout={cfg.recommendations.timeout_ms:.0f}ms)",
            _stack("org.springframework.web.client.RestTemplate.doExecute(RestTemplate.java:791)",
                   "org.springframework.web.client.RestTemplate.getForObject(RestTemplate.java:380)",
                   "com.storefront.reco.RecommendationClient.forProduct(RecommendationClient.java:52)"),
            "recommendations-client", "ERROR"),
        Failure(
            "queue_rejected", 503, "java.util.concurrent.RejectedExecutionException",
            f"Executor rejected request: all {cfg.worker_threads} worker threads busy and accept "
            f"queue full ({cfg.accept_queue})",
            _stack("org.apache.tomcat.util.threads.ThreadPoolExecutor.execute(ThreadPoolExecutor.java:1365)",
                   "org.apache.tomcat.util.net.AbstractEndpoint.processSocket(AbstractEndpoint.java:1198)"),
            "worker-pool", "ERROR"),
        Failure(
            "lb_timeout", 504, "UpstreamTimeout",
            "upstream timed out (110: Connection timed out) while reading response header from "
            "upstream",
            "", "load-balancer", "ERROR"),
        Failure(
            "instance_crash", 502, "UpstreamPrematureClose",
            "upstream prematurely closed connection while reading response header from upstream",
            "", "load-balancer", "ERROR"),
        Failure(
            "upstream_refused", 502, "UpstreamConnectError",
            "connect() failed (111: Connection refused) while connecting to upstream",
            "", "load-balancer", "ERROR"),
        Failure(
            "no_instance", 503, "NoLiveUpstreams",
            "no live upstreams while connecting to upstream", "", "load-balancer", "ERROR"),
        Failure(
            "oom", 500, "java.lang.OutOfMemoryError", "Java heap space",
            _stack("java.base/java.util.Arrays.copyOf(Arrays.java:3537)",
                   "java.base/java.util.ArrayList.grow(ArrayList.java:237)",
                   "com.storefront.checkout.OrderAuditTrail.record(OrderAuditTrail.java:61)",
                   "com.storefront.checkout.CheckoutService.placeOrder(CheckoutService.java:230)"),
            "jvm", "CRITICAL"),
    ]
    return {f.kind: f for f in entries}


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

