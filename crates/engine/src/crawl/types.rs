//! Column types as the catalog keeps them; they live with the catalog in `pipectl_state`, so
//! the query crate reads them without depending on the engine.

pub use pipectl_state::hive_type::{HiveType, merge_fields};
