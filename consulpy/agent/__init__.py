"""The agent: configuration, local services and checks, check runners, anti-entropy, and the wiring of all parts."""
