//! The /api/v1 HTTP API.
