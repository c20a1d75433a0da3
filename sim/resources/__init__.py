"""The storefront's contended resources, each usable on its own in a SimPy environment."""
