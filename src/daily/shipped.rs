//! The SQL files shipped in `sql/`, built into the binary so that `lake demo` works from any
//! working directory. Users edit the files on disk; these copies are only a fallback.

use std::path::Path;

use crate::error::{Error, Result};

/// `(path under sql/, text)` of every shipped file.
pub(crate) const FILES: &[(&str, &str)] = &[
    (
        "daily/daily_metrics.sql",
        include_str!("../../sql/daily/daily_metrics.sql"),
    ),
    (
        "daily/daily_event_type_metrics.sql",
        include_str!("../../sql/daily/daily_event_type_metrics.sql"),
    ),
    (
        "daily/daily_page_metrics.sql",
        include_str!("../../sql/daily/daily_page_metrics.sql"),
    ),
    (
        "checks/metrics_exist.sql",
        include_str!("../../sql/checks/metrics_exist.sql"),
    ),
    (
        "checks/type_counts_add_up.sql",
        include_str!("../../sql/checks/type_counts_add_up.sql"),
    ),
    (
        "checks/reconciles_with_raw.sql",
        include_str!("../../sql/checks/reconciles_with_raw.sql"),
    ),
    (
        "checks/no_null_keys.sql",
        include_str!("../../sql/checks/no_null_keys.sql"),
    ),
    (
        "checks/dead_letter_rate.sql",
        include_str!("../../sql/checks/dead_letter_rate.sql"),
    ),
    (
        "checks/volume_anomaly.sql",
        include_str!("../../sql/checks/volume_anomaly.sql"),
    ),
];

/// Writes the shipped files under `dir` (`dir/daily/*.sql`, `dir/checks/*.sql`).
pub(crate) fn write_to(dir: &Path) -> Result<()> {
    for (path, text) in FILES {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent.display(), e))?;
        }
        std::fs::write(&path, text).map_err(|e| Error::io(path.display(), e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_in_sql_is_shipped() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("sql");
        let mut on_disk = Vec::new();
        for sub in ["daily", "checks"] {
            for entry in std::fs::read_dir(root.join(sub)).unwrap() {
                on_disk.push(format!(
                    "{sub}/{}",
                    entry.unwrap().file_name().to_string_lossy()
                ));
            }
        }
        on_disk.sort();
        let mut shipped: Vec<String> = FILES.iter().map(|(p, _)| p.to_string()).collect();
        shipped.sort();
        assert_eq!(on_disk, shipped);
    }
}
