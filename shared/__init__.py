"""Code shared by the photcal services: contracts, configuration, plumbing."""
