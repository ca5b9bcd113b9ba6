"""User tools around the service: alert encoding, replay, stream generation, local broker, demo."""
