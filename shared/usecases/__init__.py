"""Use cases written once: each entry point (JSON API, CPCS endpoints, web pages, CLI) is a thin adapter that
translates its request into one call here and the outcome into its answer."""
