//! Printing results: JSON for machines, aligned text for people.

use anyhow::Result;
use serde::Serialize;

use super::Format;

/// Prints `value` as JSON, or runs `text` for the human form.
pub fn emit<T: Serialize>(format: Format, value: &T, text: impl FnOnce() -> String) -> Result<()> {
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(value)?),
        // what was read back from a store never drives the terminal
        Format::Text => print!("{}", crate::units::printable(&text())),
    }
    Ok(())
}

/// `label: value` with the label padded.
pub fn field(out: &mut String, label: &str, value: impl std::fmt::Display) {
    out.push_str(&format!("{label:<16} {value}\n"));
}

/// A comma-separated list, or `-` when empty.
pub fn list<S: AsRef<str>>(items: &[S]) -> String {
    if items.is_empty() {
        "-".into()
    } else {
        items
            .iter()
            .map(|s| s.as_ref())
            .collect::<Vec<_>>()
            .join(", ")
    }
}
