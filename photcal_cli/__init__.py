"""The photcal command line."""
