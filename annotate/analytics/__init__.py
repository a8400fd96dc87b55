"""What tracks do: crossing lines and standing in zones (counts, events, dwell times)."""
