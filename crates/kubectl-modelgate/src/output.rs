//! Printing: kubectl-style tables, gate marks, times, JSON and YAML.

use comfy_table::{Table, presets};
use jiff::Timestamp;
use serde::Serialize;

use super::{CliError, Format, Result};
use modelgate::api::condition::{FALSE, TRUE};

/// A borderless table with kubectl's look: upper-case headers, columns
/// separated by three spaces.
pub fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(presets::NOTHING)
        .force_no_tty()
        .set_header(header.to_vec());
    for c in t.column_iter_mut() {
        c.set_padding((0, 3));
    }
    t
}

/// Renders a table without trailing spaces.
pub fn render(t: &Table) -> String {
    t.lines()
        .map(|l| l.trim_end().to_string())
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// ✓ passed, ✗ failed, · pending.
pub fn mark(status: &str) -> &'static str {
    match status {
        TRUE => "✓",
        FALSE => "✗",
        _ => "·",
    }
}

/// A time as the API server wrote it, with how long ago or ahead.
pub fn when(t: Timestamp, now: Timestamp) -> String {
    format!(
        "{} ({})",
        t.strftime("%Y-%m-%d %H:%M:%SZ"),
        relative(t, now)
    )
}

/// `3d ago`, `in 89d`, `5m ago`…
pub fn relative(t: Timestamp, now: Timestamp) -> String {
    let secs = t.as_second() - now.as_second();
    let a = secs.abs();
    let span = match a {
        0..60 => format!("{a}s"),
        60..3600 => format!("{}m", a / 60),
        3600..86400 => format!("{}h", a / 3600),
        _ => format!("{}d", a / 86400),
    };
    // A time stamped this second reads as the past, not "in 0s".
    if secs > 0 {
        format!("in {span}")
    } else {
        format!("{span} ago")
    }
}

/// JSON or YAML of `value`.
pub fn structured<T: Serialize>(value: &T, format: Format) -> Result<String> {
    match format {
        Format::Yaml => {
            serde_yaml_ng::to_string(value).map_err(|e| CliError::Render(e.to_string()))
        }
        _ => serde_json::to_string_pretty(value)
            .map(|s| s + "\n")
            .map_err(|e| CliError::Render(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times_read_naturally() {
        let now: Timestamp = "2026-11-25T10:00:00Z"
            .parse()
            .unwrap_or(Timestamp::UNIX_EPOCH);
        let at = |s: i64| Timestamp::from_second(now.as_second() + s).unwrap_or(now);
        assert_eq!(relative(at(-30), now), "30s ago");
        assert_eq!(relative(at(0), now), "0s ago");
        assert_eq!(relative(at(-300), now), "5m ago");
        assert_eq!(relative(at(7200), now), "in 2h");
        assert_eq!(relative(at(89 * 86400 + 5), now), "in 89d");
    }

    #[test]
    fn tables_have_no_borders_or_trailing_space() {
        let mut t = table(&["NAME", "PHASE"]);
        t.add_row(vec!["fd", "Approved"]);
        let text = render(&t);
        assert!(text.starts_with("NAME   PHASE"), "{text}");
        assert!(text.lines().all(|l| !l.ends_with(' ')));
    }
}
