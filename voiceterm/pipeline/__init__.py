"""The voice pipeline: engines joined on the bus, and the agent facade over them."""
