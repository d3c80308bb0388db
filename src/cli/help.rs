//! Help texts that name a default clap does not apply itself: such a flag stays unset unless
//! given, so that `lake.toml` can still override the default in the settings step.

use std::fmt::Display;

/// `help` followed by `[default: value]`.
pub(crate) fn with_default(help: &str, value: impl Display) -> String {
    format!("{help} [default: {value}]")
}
