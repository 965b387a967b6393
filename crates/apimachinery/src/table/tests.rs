//! Table-driven tests of the Table printers for each built-in kind, custom resources and the Table envelope.
