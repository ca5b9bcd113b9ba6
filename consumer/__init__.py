"""The service: alert decoding and validation, the processing pipeline, the Kafka consumer loop."""
