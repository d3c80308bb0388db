//! A file of `sql/`: its name, its header (`-- severity:`, `-- description:`), its text and the
//! tables it reads, found by DataFusion's own parser (CTE names excluded).

use std::path::{Path, PathBuf};

use datafusion::sql::parser::DFParser;
use datafusion::sql::resolve::resolve_table_references;

use crate::error::{Error, Result};

/// How a failing check counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Severity {
    /// A violation fails the run.
    Error,
    /// A violation is recorded only.
    Warn,
}

#[derive(Debug, Clone)]
pub(crate) struct SqlFile {
    /// File stem: `sql/daily/daily_metrics.sql` is `daily_metrics`.
    pub(crate) name: String,
    pub(crate) path: PathBuf,
    pub(crate) text: String,
    pub(crate) severity: Severity,
    pub(crate) description: Option<String>,
    /// Tables read, as written (`raw.user_events`, `daily_metrics`, ...).
    pub(crate) reads: Vec<String>,
}

impl SqlFile {
    pub(crate) fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path.display(), e))?;
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .ok_or_else(|| Error::Config(format!("{}: not a valid file name", path.display())))?
            .to_string();
        let mut statements = DFParser::parse_sql(&text)
            .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        if statements.len() != 1 {
            return Err(Error::Config(format!(
                "{}: expected exactly one SELECT statement, found {}",
                path.display(),
                statements.len()
            )));
        }
        let statement = statements
            .pop_front()
            .ok_or_else(|| Error::Config(format!("{}: no statement", path.display())))?;
        let (tables, _ctes) = resolve_table_references(&statement, true)
            .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        let mut severity = Severity::Error;
        let mut description = None;
        for line in text
            .lines()
            .map(str::trim)
            .take_while(|l| l.starts_with("--"))
        {
            let body = line.trim_start_matches('-').trim();
            if let Some(v) = body.strip_prefix("severity:") {
                severity = match v.trim() {
                    "error" => Severity::Error,
                    "warn" => Severity::Warn,
                    other => {
                        return Err(Error::Config(format!(
                            "{}: severity must be error or warn, not {other:?}",
                            path.display()
                        )))
                    }
                };
            } else if let Some(v) = body.strip_prefix("description:") {
                description = Some(v.trim().to_string());
            }
        }
        Ok(Self {
            name,
            path: path.to_path_buf(),
            text,
            severity,
            description,
            reads: tables.iter().map(|t| t.to_string()).collect(),
        })
    }

    /// Every `*.sql` file of `dir`, sorted by name; a missing folder is an empty list.
    pub(crate) fn load_dir(dir: &Path) -> Result<Vec<Self>> {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(dir.display(), e)),
        };
        let mut paths = Vec::new();
        for entry in entries {
            let path = entry.map_err(|e| Error::io(dir.display(), e))?.path();
            if path.extension().is_some_and(|x| x == "sql") {
                paths.push(path);
            }
        }
        paths.sort();
        paths.iter().map(|p| Self::load(p)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_tables_read_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("volume.sql");
        std::fs::write(
            &p,
            "-- severity: warn\n-- description: volume is sane\nWITH t AS (SELECT * FROM raw.user_events)\nSELECT * FROM t JOIN daily_metrics USING (date)\n",
        )
        .unwrap();
        let f = SqlFile::load(&p).unwrap();
        assert_eq!(f.name, "volume");
        assert_eq!(f.severity, Severity::Warn);
        assert_eq!(f.description.as_deref(), Some("volume is sane"));
        assert_eq!(f.reads, vec!["daily_metrics", "raw.user_events"]);
    }

    #[test]
    fn syntax_errors_name_the_file_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.sql");
        std::fs::write(&p, "SELECT 1\nFROMM x").unwrap();
        let e = SqlFile::load(&p).unwrap_err().to_string();
        assert!(e.contains("bad.sql") && e.contains("Line: 2"), "{e}");
    }
}
