//! Column casts: strict ones name the first row and value that fails; lenient ones make failed
//! values NULL and count them.

use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef};
use arrow::compute::{CastOptions, can_cast_types, cast_with_options};
use arrow::datatypes::DataType;
use arrow::error::ArrowError;
use arrow::util::display::{ArrayFormatter, FormatOptions};

/// Arrow's message without the variant prefix ("Cast error: ...") that means nothing to users.
pub(super) fn arrow_message(error: &ArrowError) -> String {
    match error {
        ArrowError::CastError(message)
        | ArrowError::ComputeError(message)
        | ArrowError::InvalidArgumentError(message)
        | ArrowError::ParseError(message)
        | ArrowError::ArithmeticOverflow(message) => message.clone(),
        ArrowError::DivideByZero => "division by zero".to_string(),
        other => other.to_string(),
    }
}

/// Casts that fail on a value that does not convert, instead of making it NULL.
pub(super) fn strict_cast_options() -> CastOptions<'static> {
    CastOptions {
        safe: false,
        format_options: FormatOptions::default(),
    }
}

/// A value that could not be cast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CastFailure {
    /// 0-based index of the first failing row within the array (0 when the cast is not
    /// supported at all).
    pub row: usize,
    /// That row's value, as text (empty when the cast is not supported at all).
    pub value: String,
    /// Why it failed.
    pub message: String,
}

impl fmt::Display for CastFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.value.is_empty() && self.row == 0 {
            f.write_str(&self.message)
        } else {
            write!(
                f,
                "row {} (value '{}'): {}",
                self.row, self.value, self.message
            )
        }
    }
}

impl std::error::Error for CastFailure {}

/// Whether Arrow can cast `from` to `to` at all; check at plan time to fail before any data.
pub fn cast_supported(from: &DataType, to: &DataType) -> bool {
    can_cast_types(from, to)
}

/// Casts one column; on failure reports the first bad row index and value (strict,
/// `safe: false`) unless `null_on_error`, in which case failed values become NULL and the
/// count of nulled values is returned.
pub fn cast_column(
    array: &ArrayRef,
    to: &DataType,
    null_on_error: bool,
) -> Result<(ArrayRef, usize), CastFailure> {
    let from = array.data_type();
    if from == to {
        return Ok((Arc::clone(array), 0));
    }
    if !can_cast_types(from, to) {
        return Err(CastFailure {
            row: 0,
            value: String::new(),
            message: format!("cannot cast {from} to {to}"),
        });
    }
    let lenient = CastOptions {
        safe: true,
        format_options: FormatOptions::default(),
    };
    if null_on_error {
        let cast = cast_with_options(array, to, &lenient).map_err(|error| CastFailure {
            row: 0,
            value: String::new(),
            message: arrow_message(&error),
        })?;
        let nulled = (0..array.len())
            .filter(|&row| array.is_valid(row) && cast.is_null(row))
            .count();
        return Ok((cast, nulled));
    }
    match cast_with_options(array, to, &strict_cast_options()) {
        Ok(cast) => Ok((cast, 0)),
        Err(error) => Err(locate_cast_failure(array, to, &error)),
    }
}

/// Finds the row behind a failed strict cast: the first value the lenient cast turns into
/// NULL, or failing that (some casts error rather than null) the first row that fails alone.
fn locate_cast_failure(array: &ArrayRef, to: &DataType, error: &ArrowError) -> CastFailure {
    let lenient = CastOptions {
        safe: true,
        format_options: FormatOptions::default(),
    };
    let nulled_row = cast_with_options(array, to, &lenient)
        .ok()
        .and_then(|cast| (0..array.len()).find(|&row| array.is_valid(row) && cast.is_null(row)));
    let row = nulled_row.or_else(|| {
        (0..array.len()).find(|&row| {
            cast_with_options(&array.slice(row, 1), to, &strict_cast_options()).is_err()
        })
    });
    let Some(row) = row else {
        return CastFailure {
            row: 0,
            value: String::new(),
            message: arrow_message(error),
        };
    };
    let message = match cast_with_options(&array.slice(row, 1), to, &strict_cast_options()) {
        Err(row_error) => arrow_message(&row_error),
        Ok(_) => format!("cannot cast to {to}"),
    };
    CastFailure {
        row,
        value: format_value(array, row),
        message,
    }
}

fn format_value(array: &ArrayRef, row: usize) -> String {
    let options = FormatOptions::default().with_null("null");
    ArrayFormatter::try_new(array.as_ref(), &options)
        .map(|formatter| formatter.value(row).to_string())
        .unwrap_or_default()
}
