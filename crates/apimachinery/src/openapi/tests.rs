//! Tests of the OpenAPI v3 documents.
