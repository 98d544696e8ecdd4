//! Small languages inside the spec: generator templates, filter expressions, column type names.
pub mod datatype;
pub mod expr;
mod faker_data;
pub mod prefix;
pub mod template;
