"""What sponsors and operators read: recruitment counters, the sponsor report, the event feed, metrics."""
