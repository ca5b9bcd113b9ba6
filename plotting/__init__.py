"""Pictures of alerts: colour composites, critical curves, predicted images (the ``plot`` extra)."""
