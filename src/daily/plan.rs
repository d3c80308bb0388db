//! The order daily files run in: a file that reads another file's table (`processed.<name>` or
//! a bare `<name>`) runs after it. Cycles and tables that exist nowhere are errors naming the
//! file.

use std::collections::{BTreeMap, BTreeSet};

use super::sql_file::SqlFile;
use crate::error::{Error, Result};

/// The daily table a reference names, if it is one of `outputs`.
fn produced_by<'a>(reference: &str, outputs: &'a BTreeSet<String>) -> Option<&'a String> {
    let name = match reference.split('.').collect::<Vec<_>>().as_slice() {
        [name] | ["processed", name] | ["lake", "processed", name] => *name,
        _ => return None,
    };
    outputs.get(name)
}

/// Orders `files` so that every file runs after the files whose tables it reads.
/// `exists` says whether a table reference that no file produces is in the lake already.
pub(crate) fn order(files: Vec<SqlFile>, exists: impl Fn(&str) -> bool) -> Result<Vec<SqlFile>> {
    let outputs: BTreeSet<String> = files.iter().map(|f| f.name.clone()).collect();
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let mut mine = BTreeSet::new();
        for r in &f.reads {
            match produced_by(r, &outputs) {
                Some(name) if *name == f.name => {
                    return Err(Error::Config(format!(
                        "{}: reads its own table {r}",
                        f.path.display()
                    )))
                }
                Some(name) => {
                    mine.insert(name.clone());
                }
                None if exists(r) => {}
                None => {
                    return Err(Error::Config(format!(
                        "{}: unknown table {r} (not in the lake and no sql/daily file makes it)",
                        f.path.display()
                    )))
                }
            }
        }
        deps.insert(f.name.clone(), mine);
    }
    let mut by_name: BTreeMap<String, SqlFile> =
        files.into_iter().map(|f| (f.name.clone(), f)).collect();
    let mut ordered = Vec::new();
    while !by_name.is_empty() {
        let ready: Vec<String> = by_name
            .keys()
            .filter(|n| deps[*n].iter().all(|d| !by_name.contains_key(d)))
            .cloned()
            .collect();
        if ready.is_empty() {
            let stuck: Vec<String> = by_name
                .values()
                .map(|f| f.path.display().to_string())
                .collect();
            return Err(Error::Config(format!(
                "cycle between daily files: {}",
                stuck.join(", ")
            )));
        }
        for name in ready {
            if let Some(f) = by_name.remove(&name) {
                ordered.push(f);
            }
        }
    }
    Ok(ordered)
}

/// Checks that every table a check reads exists in the lake or is made by a daily file.
pub(crate) fn check_reads(
    checks: &[SqlFile],
    daily: &[SqlFile],
    exists: impl Fn(&str) -> bool,
) -> Result<()> {
    let outputs: BTreeSet<String> = daily.iter().map(|f| f.name.clone()).collect();
    for c in checks {
        if let Some(r) = c
            .reads
            .iter()
            .find(|r| produced_by(r, &outputs).is_none() && !exists(r))
        {
            return Err(Error::Config(format!(
                "{}: unknown table {r} (not in the lake and no sql/daily file makes it)",
                c.path.display()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daily::sql_file::Severity;

    fn file(name: &str, reads: &[&str]) -> SqlFile {
        SqlFile {
            name: name.into(),
            path: format!("sql/daily/{name}.sql").into(),
            text: String::new(),
            severity: Severity::Error,
            description: None,
            reads: reads.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn raw_only(r: &str) -> bool {
        r == "raw.user_events"
    }

    #[test]
    fn dependencies_run_first() {
        let files = vec![
            file("a_rollup", &["processed.z_base", "b_mid"]),
            file("b_mid", &["z_base"]),
            file("z_base", &["raw.user_events"]),
        ];
        let names: Vec<String> = order(files, raw_only)
            .unwrap()
            .into_iter()
            .map(|f| f.name)
            .collect();
        assert_eq!(names, vec!["z_base", "b_mid", "a_rollup"]);
    }

    #[test]
    fn cycles_and_unknown_tables_name_the_file() {
        let e = order(vec![file("a", &["b"]), file("b", &["a"])], raw_only).unwrap_err();
        assert!(e.to_string().contains("cycle") && e.to_string().contains("sql/daily/a.sql"));
        let e = order(vec![file("a", &["raw.nope"])], raw_only).unwrap_err();
        assert!(
            e.to_string()
                .contains("sql/daily/a.sql: unknown table raw.nope"),
            "{e}"
        );
    }
}
