"""The storefront's contended resources, each usable on its own in a `sim.engine.Environment`."""
