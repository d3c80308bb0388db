//! Physical plans kept between requests, so that a query is not planned again and again.
//!
//! Flight SQL asks for a query's schema (GetFlightInfo) and then for its rows (DoGet) with the
//! ticket it was given, and dashboards and prepared statements send the same query many times.
//! Tickets are stateless (they carry the SQL and the bound parameters), so every request could
//! plan from scratch; for a point query, planning costs more than running. Plans therefore
//! wait here, keyed by the encoded statement handle:
//!
//! - a **reusable** plan serves every later request for the same handle while each table
//!   snapshot it was planned from is still the latest (one `stat` per table), so answers stay
//!   as fresh as a new plan's. Each use gets the plan with its run state reset.
//! - any other plan (it reads a table outside the lake, calls a function whose value depends
//!   on when it is planned such as `now()`, or has an operator not known to be safe to run
//!   twice) is handed out once, to the DoGet that follows its GetFlightInfo, within a few
//!   seconds.
//!
//! A request that finds nothing plans afresh, so the cache changes speed, never answers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::execution::memory_pool::{
    MemoryConsumer, MemoryPool, MemoryReservation, UnboundedMemoryPool,
};
use datafusion::logical_expr::{Expr, LogicalPlan, Volatility};
use datafusion::physical_expr::expressions::Literal;
use datafusion::physical_plan::execution_plan::reset_plan_states;
use datafusion::physical_plan::ExecutionPlan;

use crate::lake::snapshots::Read;

/// How long a one-time plan waits for its DoGet.
const ONE_TIME_FOR: Duration = Duration::from_secs(10);
/// On an object store, a plan found to read the latest snapshots is taken as still reading them
/// for this long without asking again: the DoGet right after its GetFlightInfo then costs no
/// request, and its answer is at most this much older than the DoGet (the snapshot its
/// GetFlightInfo saw). On a local disk every lookup looks (a stat).
const CHECKED_FOR: Duration = Duration::from_millis(200);
/// At most this many plans are kept; the least recently used goes first.
const CAPACITY: usize = 256;
/// What the kept plans may hold together, in bytes: their keys (the SQL and parameters) and the
/// constants in their plans (a folded `repeat('x', 10^8)` is one). A plan larger than a
/// quarter of this is not kept: its DoGet plans afresh.
const MAX_BYTES: usize = 64 << 20;
/// Operators that keep no state across runs beyond what `reset_plan_states` renews. Joins,
/// sorts with a limit (TopK) and the like share dynamic filters between operators, which
/// DataFusion does not promise to renew; plans with them are not reused.
const REUSABLE_OPERATORS: &[&str] = &[
    "DataSourceExec",
    "DeltaScan",
    "DeltaScanExec",
    "DeltaScanMetaExec",
    "FilterExec",
    "ProjectionExec",
    "CoalesceBatchesExec",
    "CoalescePartitionsExec",
    "CooperativeExec",
    "RepartitionExec",
    "GlobalLimitExec",
    "LocalLimitExec",
    "EmptyExec",
    "PlaceholderRowExec",
];

/// A query ready to run: its result schema, physical plan, and whether and how long it may be
/// reused.
#[derive(Debug, Clone)]
pub(crate) struct Planned {
    pub(crate) schema: SchemaRef,
    pub(crate) plan: Arc<dyn ExecutionPlan>,
    /// The table snapshots it was planned from, when it may be reused while they are latest.
    reuse: Option<Vec<Read>>,
    /// The bytes of the constants in `plan`.
    constants: usize,
    /// When its snapshots were last found to be the latest with requests to an object store.
    checked: Option<Instant>,
}

impl Planned {
    /// `plan` of `logical` (before optimisation), planned from the snapshots `reads`.
    pub(crate) fn new(
        schema: SchemaRef,
        plan: Arc<dyn ExecutionPlan>,
        logical: &LogicalPlan,
        reads: Vec<Read>,
    ) -> Self {
        let reusable = only_immutable_functions(logical) && only_reusable_operators(&plan);
        Self {
            schema,
            constants: constant_bytes(&plan),
            plan,
            reuse: reusable.then_some(reads),
            checked: None,
        }
    }

    /// Whether it may serve more than one run (while its snapshots are the latest).
    pub(crate) fn is_reusable(&self) -> bool {
        self.reuse.is_some()
    }
}

/// Whether every function `plan` calls gives the same result whenever it runs: `now()` and
/// the like are folded into constants when a query is planned.
fn only_immutable_functions(plan: &LogicalPlan) -> bool {
    let mut immutable = true;
    let _ = plan.apply_with_subqueries(|node| {
        node.apply_expressions(|expr| {
            expr.apply(|e| {
                if let Expr::ScalarFunction(f) = e {
                    if f.func.signature().volatility != Volatility::Immutable {
                        immutable = false;
                        return Ok(TreeNodeRecursion::Stop);
                    }
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })?;
        Ok(if immutable {
            TreeNodeRecursion::Continue
        } else {
            TreeNodeRecursion::Stop
        })
    });
    immutable
}

/// The bytes of every constant in `plan`'s expressions.
fn constant_bytes(plan: &Arc<dyn ExecutionPlan>) -> usize {
    let mut bytes = 0usize;
    let _ = plan.apply_expressions(&mut |root| {
        root.apply(|e| {
            if let Some(literal) = e.downcast_ref::<Literal>() {
                bytes = bytes.saturating_add(literal.value().size());
            }
            Ok(TreeNodeRecursion::Continue)
        })
    });
    plan.children()
        .iter()
        .fold(bytes, |total, c| total.saturating_add(constant_bytes(c)))
}

fn only_reusable_operators(plan: &Arc<dyn ExecutionPlan>) -> bool {
    REUSABLE_OPERATORS.contains(&plan.name())
        && plan.children().iter().all(|c| only_reusable_operators(c))
}

/// Plans by encoded statement handle.
#[derive(Debug)]
pub(crate) struct PlanCache {
    kept: Mutex<Kept>,
}

impl Default for PlanCache {
    fn default() -> Self {
        Self::new(&(Arc::new(UnboundedMemoryPool::default()) as Arc<dyn MemoryPool>))
    }
}

#[derive(Debug)]
struct Kept {
    /// Plans by key, with when they were kept and when last used (a counter: lowest is least
    /// recently used).
    plans: HashMap<Vec<u8>, (Instant, u64, Planned)>,
    uses: u64,
    /// The sum of [`size`] over `plans`, counted against the queries' memory limit: a kept plan
    /// leaves running queries less, and a full pool keeps no plan.
    reservation: MemoryReservation,
}

/// What keeping `planned` under `key` holds, in bytes.
fn size(key: &[u8], planned: &Planned) -> usize {
    key.len().saturating_add(planned.constants)
}

impl Kept {
    /// Keeps `entry` under `key`, which holds nothing, unless the memory pool has no room for it.
    fn insert(&mut self, key: Vec<u8>, entry: (Instant, u64, Planned)) {
        let bytes = size(&key, &entry.2);
        if self.reservation.try_grow(bytes).is_ok() {
            self.plans.insert(key, entry);
        }
    }

    fn remove(&mut self, key: &[u8]) -> Option<(Instant, u64, Planned)> {
        let entry = self.plans.remove(key)?;
        self.reservation.shrink(size(key, &entry.2));
        Some(entry)
    }

    fn least_recently_used(&self) -> Option<Vec<u8>> {
        self.plans
            .iter()
            .min_by_key(|(_, (_, used, _))| *used)
            .map(|(k, _)| k.clone())
    }
}

impl PlanCache {
    /// A cache whose plans count against `pool`.
    pub(crate) fn new(pool: &Arc<dyn MemoryPool>) -> Self {
        Self {
            kept: Mutex::new(Kept {
                plans: HashMap::new(),
                uses: 0,
                reservation: MemoryConsumer::new("kept plans").register(pool),
            }),
        }
    }

    /// Keeps `planned` for later requests of `key`.
    pub(crate) fn keep(&self, key: Vec<u8>, planned: Planned) {
        let Ok(mut kept) = self.kept.lock() else {
            return;
        };
        let now = Instant::now();
        let expired: Vec<Vec<u8>> = kept
            .plans
            .iter()
            .filter(|(_, (at, _, p))| !p.is_reusable() && now.duration_since(*at) >= ONE_TIME_FOR)
            .map(|(k, _)| k.clone())
            .collect();
        for k in expired {
            kept.remove(&k);
        }
        kept.remove(&key);
        let bytes = size(&key, &planned);
        if bytes > MAX_BYTES / 4 {
            return;
        }
        while kept.plans.len() >= CAPACITY || kept.reservation.size() + bytes > MAX_BYTES {
            match kept.least_recently_used() {
                Some(oldest) => kept.remove(&oldest),
                None => break,
            };
        }
        kept.uses += 1;
        let used = kept.uses;
        kept.insert(key, (now, used, planned));
    }

    /// A plan for `key` that gives the same answer as a new one would, if one is kept, ready
    /// to run. A one-time plan is handed out here, and forgotten.
    pub(crate) async fn get(&self, key: &[u8]) -> Option<Planned> {
        self.lookup(key, true, |planned| {
            let mut ready = planned.clone();
            if planned.is_reusable() {
                // Each run starts from a clean run state.
                ready.plan = reset_plan_states(planned.plan.clone()).ok()?;
            }
            Some(ready)
        })
        .await
    }

    /// The result schema of the plan [`PlanCache::get`] would hand out for `key`, without
    /// handing it out: what GetFlightInfo needs, leaving a one-time plan for its DoGet.
    pub(crate) async fn schema(&self, key: &[u8]) -> Option<SchemaRef> {
        self.lookup(key, false, |planned| Some(planned.schema.clone()))
            .await
    }

    /// `answer` of the plan kept for `key`, if it still gives the same answer as a new plan
    /// would; drops a plan that no longer does. `hand_out` takes a one-time plan out.
    async fn lookup<T>(
        &self,
        key: &[u8],
        hand_out: bool,
        answer: impl FnOnce(&Planned) -> Option<T>,
    ) -> Option<T> {
        // Whether what the plan read is still the latest is asked without the lock held: on an
        // object store it takes a request per table.
        let (reads, recently) = {
            let kept = self.kept.lock().ok()?;
            let planned = &kept.plans.get(key)?.2;
            let recently = planned.checked.is_some_and(|t| t.elapsed() < CHECKED_FOR);
            (planned.reuse.clone(), recently)
        };
        let fresh = match &reads {
            Some(_) if recently => true,
            Some(reads) => Read::all_latest(reads).await,
            None => false,
        };
        let remote = reads
            .iter()
            .flatten()
            .any(|read| read.url.scheme() != "file");
        let mut kept = self.kept.lock().ok()?;
        kept.uses += 1;
        let used = kept.uses;
        let (at, last_used, planned) = kept.plans.get_mut(key)?;
        match &planned.reuse {
            Some(_) if fresh => {
                if remote && !recently {
                    planned.checked = Some(Instant::now());
                }
                *last_used = used;
                answer(planned)
            }
            None if at.elapsed() < ONE_TIME_FOR && !hand_out => answer(planned),
            None if at.elapsed() < ONE_TIME_FOR => {
                let (_, _, planned) = kept.remove(key)?;
                answer(&planned)
            }
            // Stale: a table it read has a newer commit, or its DoGet never came.
            _ => {
                kept.remove(key);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::Schema;
    use datafusion::logical_expr::LogicalPlanBuilder;
    use datafusion::physical_plan::empty::EmptyExec;
    use datafusion::prelude::{lit, SessionContext};

    fn planned(reads: Option<Vec<Read>>) -> Planned {
        let schema = Arc::new(Schema::empty());
        Planned {
            plan: Arc::new(EmptyExec::new(schema.clone())),
            schema,
            reuse: reads,
            constants: 0,
            checked: None,
        }
    }

    #[tokio::test]
    async fn a_one_time_plan_is_handed_out_once_and_the_least_used_makes_room() {
        let cache = PlanCache::default();
        cache.keep(b"q".to_vec(), planned(None));
        assert!(cache.get(b"other").await.is_none());
        assert!(cache.schema(b"q").await.is_some(), "GetFlightInfo's look");
        assert!(
            cache.schema(b"q").await.is_some(),
            "leaves it for the DoGet"
        );
        assert!(cache.get(b"q").await.is_some());
        assert!(
            cache.get(b"q").await.is_none(),
            "a second DoGet plans afresh"
        );

        cache.keep(b"0".to_vec(), planned(Some(vec![])));
        for i in 1..CAPACITY {
            cache.keep(i.to_string().into_bytes(), planned(None));
        }
        assert!(
            cache.get(b"0").await.is_some(),
            "used: the least recently used is now 1"
        );
        cache.keep(b"new".to_vec(), planned(None));
        assert!(cache.get(b"1").await.is_none(), "dropped to make room");
        assert!(cache.get(b"0").await.is_some());
        assert!(cache.get(b"new").await.is_some());
    }

    #[tokio::test]
    async fn kept_plans_are_bounded_by_the_bytes_they_hold() {
        let ctx = SessionContext::new();
        let df = ctx.sql("SELECT repeat('x', 1000000) AS s").await.unwrap();
        let logical = df.logical_plan().clone();
        let physical = df.create_physical_plan().await.unwrap();
        let folded = Planned::new(physical.schema(), physical, &logical, vec![]);
        assert!(folded.constants >= 1_000_000, "{}", folded.constants);

        let with = |constants: usize| Planned {
            constants,
            ..planned(Some(vec![]))
        };
        let cache = PlanCache::default();
        cache.keep(b"huge".to_vec(), with(MAX_BYTES / 4 + 1));
        assert!(cache.get(b"huge").await.is_none(), "too big to keep at all");
        let big = MAX_BYTES / 4 - 16;
        for i in 0..5u8 {
            cache.keep(vec![i], with(big));
            let bytes = cache.kept.lock().unwrap().reservation.size();
            assert!(bytes <= MAX_BYTES, "{bytes}");
        }
        assert!(cache.get(&[0]).await.is_none(), "the oldest made room");
        for i in 1..5u8 {
            assert!(cache.get(&[i]).await.is_some(), "{i}");
        }
        // Replacing and handing out keep the count right.
        cache.keep(vec![1], with(0));
        {
            let kept = cache.kept.lock().unwrap();
            assert_eq!(kept.reservation.size(), 1 + 3 * (1 + big));
        }

        // Kept plans count against the queries' memory limit.
        use datafusion::execution::memory_pool::GreedyMemoryPool;
        let pool: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(1_000));
        let cache = PlanCache::new(&pool);
        cache.keep(b"a".to_vec(), with(600));
        assert_eq!(pool.reserved(), 601);
        cache.keep(b"b".to_vec(), with(600));
        assert!(cache.get(b"b").await.is_none(), "no room left in the pool");
        assert!(cache.get(b"a").await.is_some());
        drop(cache);
        assert_eq!(pool.reserved(), 0, "given back");
    }

    #[tokio::test]
    async fn a_reusable_plan_serves_until_a_table_it_read_has_a_newer_commit() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("_delta_log");
        std::fs::create_dir(&log).unwrap();
        let url = crate::lake::dir_url(dir.path()).unwrap();
        let read = |version| Read {
            url: url.clone(),
            version,
            log: deltalake::logstore::logstore_for(&url, Default::default()).unwrap(),
        };
        let cache = PlanCache::default();
        cache.keep(b"q".to_vec(), planned(Some(vec![read(Some(3))])));
        assert!(cache.get(b"q").await.is_some());
        assert!(
            cache.get(b"q").await.is_some(),
            "reused while version 3 is the latest"
        );
        assert!(cache.schema(b"q").await.is_some());
        std::fs::write(log.join(format!("{:020}.json", 4)), "{}").unwrap();
        assert!(
            cache.schema(b"q").await.is_none(),
            "version 4 exists: plan again"
        );
        assert!(cache.get(b"q").await.is_none(), "and it is gone");
        assert!(!read(None).is_latest().await);
    }

    #[tokio::test]
    async fn on_an_object_store_a_fresh_plan_is_not_asked_about_again_for_a_moment() {
        use object_store::ObjectStoreExt;
        let url = url::Url::parse("memory:///t/").unwrap();
        let log = deltalake::logstore::logstore_for(&url, Default::default()).unwrap();
        let read = Read {
            url,
            version: Some(3),
            log: log.clone(),
        };
        let cache = PlanCache::default();
        cache.keep(b"q".to_vec(), planned(Some(vec![read])));
        assert!(cache.schema(b"q").await.is_some(), "no version 4: fresh");
        let next = deltalake::logstore::commit_uri_from_version(Some(4));
        log.object_store(None)
            .put(&next, b"{}".to_vec().into())
            .await
            .unwrap();
        assert!(
            cache.get(b"q").await.is_some(),
            "the DoGet right after its GetFlightInfo takes that answer"
        );
        tokio::time::sleep(CHECKED_FOR + Duration::from_millis(50)).await;
        assert!(cache.get(b"q").await.is_none(), "later, version 4 is seen");
    }

    #[tokio::test]
    async fn a_reused_plan_with_repartitioning_gives_the_same_rows_every_run() {
        use datafusion::arrow::array::{Int64Array, RecordBatch};
        use datafusion::datasource::MemTable;
        use datafusion::physical_plan::collect;
        use datafusion::prelude::SessionConfig;

        let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(4));
        let n = Arc::new(Int64Array::from_iter_values(0..10_000)) as _;
        let batch = RecordBatch::try_from_iter([("n", n)]).unwrap();
        let table = MemTable::try_new(batch.schema(), vec![vec![batch]]).unwrap();
        ctx.register_table("t", Arc::new(table)).unwrap();
        let df = ctx.sql("SELECT n FROM t WHERE n % 3 = 0").await.unwrap();
        let logical = df.logical_plan().clone();
        let physical = df.create_physical_plan().await.unwrap();
        let has_repartition = datafusion::physical_plan::displayable(physical.as_ref())
            .indent(false)
            .to_string()
            .contains("RepartitionExec");
        assert!(has_repartition, "the case this test is about");

        let cache = PlanCache::default();
        cache.keep(
            b"q".to_vec(),
            Planned::new(physical.schema(), physical, &logical, vec![]),
        );
        for _ in 0..3 {
            let planned = cache.get(b"q").await.expect("reusable");
            let batches = collect(planned.plan, ctx.task_ctx()).await.unwrap();
            assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 3_334);
        }
    }

    #[tokio::test]
    async fn plans_calling_now_or_with_joins_are_not_reused() {
        let ctx = SessionContext::new();
        let plan = |sql: &'static str| {
            let ctx = ctx.clone();
            async move {
                let df = ctx.sql(sql).await.unwrap();
                let logical = df.logical_plan().clone();
                let physical = df.create_physical_plan().await.unwrap();
                Planned::new(physical.schema(), physical, &logical, vec![])
            }
        };
        assert!(plan("SELECT 1 + 1 AS two").await.reuse.is_some());
        assert!(plan("SELECT now() AS t").await.reuse.is_none());
        assert!(plan("SELECT abs(random()) AS r").await.reuse.is_none());
        let join = "SELECT * FROM (VALUES (1), (2)) a(x) JOIN (VALUES (1)) b(y) ON a.x = b.y";
        assert!(plan(join).await.reuse.is_none());
        let builder = LogicalPlanBuilder::empty(true)
            .project(vec![lit(1)])
            .unwrap();
        assert!(only_immutable_functions(&builder.build().unwrap()));
    }
}
