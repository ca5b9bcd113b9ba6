"""User tools around the service: alert encoding, replay, stream generation, the local broker, the demo."""
