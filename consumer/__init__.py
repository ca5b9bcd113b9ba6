"""The service: alert decoding and validation, the processing pipeline and the Kafka consumer loop."""
