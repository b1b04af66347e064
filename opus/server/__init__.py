"""The OPUS server: REST API, job service, storage and execution managers."""
