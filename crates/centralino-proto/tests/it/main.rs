//! Integration tests of centralino-proto: the checked-in generated code matches `proto/`.

mod codegen;
