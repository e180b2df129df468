//! Text meant for spreadsheets (CSV exports of the CLI and the portal).

use std::borrow::Cow;

/// A cell a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, or a
/// tab or carriage return before one) gets a leading `'`, which makes it
/// text: names and ids come from users and providers, and a CSV export
/// must not become a way to run formulas on an admin's machine (OWASP's
/// CSV injection advice). Numbers are written by the exporter, never
/// through this.
pub fn spreadsheet_safe(cell: &str) -> Cow<'_, str> {
    match cell.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r' | b'\n') => Cow::Owned(format!("'{cell}")),
        _ => Cow::Borrowed(cell),
    }
}

#[cfg(test)]
mod tests {
    use super::spreadsheet_safe;

    #[test]
    fn formulas_become_text() {
        for f in ["=HYPERLINK(\"x\")", "+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"] {
            assert_eq!(spreadsheet_safe(f), format!("'{f}"));
        }
    }

    #[test]
    fn plain_text_is_left_alone() {
        for t in ["alice@example.com", "claude-sonnet-4", "", "a=b", "team -1"] {
            assert_eq!(spreadsheet_safe(t), t);
        }
    }
}
