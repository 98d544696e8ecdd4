//! Evaluation of filter conditions and column casts on Arrow record batches.
//!
//! A condition is compiled once against the input schema: column names are resolved, operand
//! types unified and literals converted to the type they are compared with, so per-batch work
//! is only Arrow kernels. Parts that read no column are folded to constants at compile time.
//!
//! - [`types`]: spec column types as Arrow types, and declared schemas.
//! - [`filter`]: the condition compiler (operand unification, constant folding) and evaluation.
//! - [`cast`]: strict and lenient column casts that name the first value that fails.

pub mod cast;
pub mod filter;
pub mod types;

pub use cast::{CastFailure, cast_column, cast_supported};
pub use filter::{CompiledFilter, EvalError};
pub use types::{arrow_type, declared_schema};

#[cfg(test)]
mod tests;
