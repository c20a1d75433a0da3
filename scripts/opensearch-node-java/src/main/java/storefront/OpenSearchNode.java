package storefront;

import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.opensearch.common.logging.LogConfigurator;
import org.opensearch.common.settings.Settings;
import org.opensearch.env.Environment;
import org.opensearch.index.mapper.MapperExtrasPlugin;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.node.Node;
import org.opensearch.plugins.Plugin;
import org.opensearch.transport.Netty4Plugin;

/**
 * Runs one OpenSearch node in this JVM, built from Maven Central jars only.
 *
 * <p>Why a subclass: {@link Node}'s public constructor only loads plugins from a plugins/
 * directory; the protected one accepts classpath plugin classes, which is how we add the
 * Netty4 HTTP transport and the mapper-extras module (scaled_float) without a distribution. Settings come from
 * {@code <path.home>/config/opensearch.yml} (written by scripts/opensearch-node), logging from
 * {@code <path.home>/config/log4j2.properties}.
 */
public final class OpenSearchNode extends Node {

    private static final Collection<Class<? extends Plugin>> PLUGINS =
            List.of(Netty4Plugin.class, MapperExtrasPlugin.class);

    private OpenSearchNode(Environment environment) {
        super(environment, PLUGINS, true);
    }

    public static void main(String[] args) throws Exception {
        String home = System.getProperty("opensearch.path.home");
        if (home == null || home.isEmpty()) {
            System.err.println("opensearch-node: -Dopensearch.path.home=<dir> is required");
            System.exit(2);
        }
        Path homePath = Paths.get(home).toAbsolutePath();
        Environment env = InternalSettingsPreparer.prepareEnvironment(
                Settings.EMPTY,
                Map.of("path.home", homePath.toString()),
                homePath.resolve("config"),
                () -> "storefront-node");
        // Node name first: the %node_name pattern converter needs it when log4j is configured.
        LogConfigurator.setNodeName(Node.NODE_NAME_SETTING.get(env.settings()));
        LogConfigurator.configure(env);

        OpenSearchNode node = new OpenSearchNode(env);
        CountDownLatch stopped = new CountDownLatch(1);
        // SIGTERM/SIGINT: close the node so Lucene commits and the translog is fsynced.
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.close();
                node.awaitClose(30, TimeUnit.SECONDS);
            } catch (Exception e) {
                e.printStackTrace();
            } finally {
                stopped.countDown();
            }
        }, "opensearch-node-shutdown"));
        node.start();
        // The node's own threads are daemons; keep the JVM alive until a shutdown signal.
        stopped.await();
    }
}
