//! Where progress is made durable: the last ingested Kafka offset of each topic-partition is a
//! Delta application transaction (`txn` action) in the table itself, written in the same commit
//! as the rows ([`super::writer`]). Kafka's committed offsets are informational only. Reading
//! the markers back is [`crate::lake::progress`], shared with the daily sensor and the server.

use std::collections::BTreeMap;

use deltalake::kernel::Transaction;

use crate::lake::progress::app_id;

/// The marker saying "everything up to `last_offset` of this partition is in the table".
pub fn marker(source: &str, partition: i32, last_offset: i64) -> Transaction {
    Transaction::new(app_id(source, partition), last_offset)
}

/// One table's markers as of one version of it. Reading a marker replays the log back to the
/// commit that last set it; while the version is still the table's latest (one `stat`), the
/// committer reads them from here instead.
#[derive(Debug, Default)]
pub(crate) struct MarkerCache {
    version: Option<u64>,
    marks: BTreeMap<i32, Option<i64>>,
}

impl MarkerCache {
    /// The markers of `partitions` at `version`, if all are known for that version.
    pub(crate) fn get(
        &self,
        version: Option<u64>,
        partitions: &[i32],
    ) -> Option<BTreeMap<i32, Option<i64>>> {
        if version.is_none() || version != self.version {
            return None;
        }
        partitions
            .iter()
            .map(|p| self.marks.get(p).map(|m| (*p, *m)))
            .collect()
    }

    /// Markers read from the table at `version`.
    pub(crate) fn read(&mut self, version: Option<u64>, marks: &BTreeMap<i32, Option<i64>>) {
        if version != self.version {
            self.marks.clear();
            self.version = version;
        }
        self.marks.extend(marks);
    }

    /// This worker's commit `version` set `marks`. The rest is still known only when that commit
    /// directly follows the version known: a commit in between may have set any marker.
    pub(crate) fn committed(&mut self, version: u64, marks: &BTreeMap<i32, i64>) {
        if self.version.map(|v| v + 1) == Some(version) {
            self.version = Some(version);
            self.marks.extend(marks.iter().map(|(p, o)| (*p, Some(*o))));
        } else {
            *self = Self::default();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_known_only_for_the_version_they_were_read_or_written_at() {
        let mut c = MarkerCache::default();
        assert_eq!(c.get(Some(3), &[0]), None);
        c.read(Some(3), &BTreeMap::from([(0, Some(10)), (1, None)]));
        assert_eq!(
            c.get(Some(3), &[0, 1]),
            Some(BTreeMap::from([(0, Some(10)), (1, None)]))
        );
        assert_eq!(c.get(Some(3), &[0, 2]), None, "partition 2 was never read");
        assert_eq!(c.get(Some(4), &[0]), None, "another version");
        c.committed(4, &BTreeMap::from([(1, 7)]));
        assert_eq!(
            c.get(Some(4), &[0, 1]),
            Some(BTreeMap::from([(0, Some(10)), (1, Some(7))]))
        );
        c.committed(6, &BTreeMap::from([(1, 9)]));
        assert_eq!(
            c.get(Some(6), &[1]),
            None,
            "version 5 came from someone else"
        );
        c.read(Some(6), &BTreeMap::from([(1, Some(9))]));
        c.read(Some(7), &BTreeMap::from([(0, Some(11))]));
        assert_eq!(
            c.get(Some(7), &[1]),
            None,
            "a new version forgets the old markers"
        );
    }
}
