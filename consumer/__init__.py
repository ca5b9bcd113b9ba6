"""Alert decoding, the processing pipeline and the Kafka consumer loop."""
