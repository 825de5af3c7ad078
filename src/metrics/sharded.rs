//! Counters and duration histograms that every request updates, without making the cores take
//! turns at one cache line.
//!
//! prometheus's own `IntCounter` and `Histogram` keep one set of atomics that every thread adds
//! to (a histogram: the hot shard's index and count, a bucket, the sum, the count). On a server
//! whose two worker threads answer requests alternately, each of those additions finds its
//! cache line in the other core's cache and waits for it to move over. An authenticated request
//! updates four series (its counter and its duration, the store's timer, the session check);
//! one request's counter and duration cost 36–41 ns on one thread and 344–412 ns per thread on
//! both cores at once (`examples/metrics_contention`, five runs on two cores).
//!
//! Here every series keeps one cell per shard, each on cache lines of its own, and a thread
//! always adds to the same shard (threads are dealt shards in turn, on their first update), so
//! the cores' additions never touch the same line; a scrape sums the shards. The series are
//! still prometheus `MetricVec`s, registered and encoded by the prometheus crate like the others:
//! only where a value is kept differs.
//!
//! What a scrape reads: each shard's cell once, so a counter never goes backwards between two
//! scrapes; a histogram's `_count` and `+Inf` bucket are the sum of its buckets as read, so
//! they always agree; its `_sum` may lag its buckets by the observations being made while it
//! is read (it is added to separately).

use std::{
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed},
        Arc, LazyLock,
    },
    time::Duration,
};

use prometheus::{
    core::{Describer, Metric, MetricVec, MetricVecBuilder},
    proto, HistogramOpts, Opts,
};

/// Shards per series: twice the cores, so the worker threads (one per core) rarely share one
/// even when other threads (the hashing pool, tokio's blocking threads) were dealt theirs first.
static SHARDS: LazyLock<usize> = LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(4, |n| n.get());
    (cores * 2).clamp(4, 128)
});

/// The next shard to deal to a thread.
static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's shard, dealt on its first update.
    static SHARD: usize = NEXT_SHARD.fetch_add(1, Relaxed) % *SHARDS;
}

fn shard() -> usize {
    SHARD.with(|s| *s)
}

/// A value on cache lines of its own: 128 bytes, as the CPUs that fetch lines in adjacent
/// pairs need (crossbeam's `CachePadded` makes the same choice on x86-64).
#[repr(align(128))]
struct Padded<T>(T);

fn padded<T>(make: impl Fn() -> T) -> Box<[Padded<T>]> {
    (0..*SHARDS).map(|_| Padded(make())).collect()
}

/// The series' label pairs, as prometheus writes them: its variable labels with their values,
/// then its constant labels, sorted by name.
fn label_pairs(
    opts: &impl Describer,
    values: &[impl AsRef<str>],
) -> prometheus::Result<Vec<proto::LabelPair>> {
    let desc = opts.describe()?;
    if desc.variable_labels.len() != values.len() {
        return Err(prometheus::Error::InconsistentCardinality {
            expect: desc.variable_labels.len(),
            got: values.len(),
        });
    }
    let mut pairs: Vec<proto::LabelPair> = desc
        .variable_labels
        .iter()
        .zip(values)
        .map(|(name, value)| {
            let mut pair = proto::LabelPair::default();
            pair.set_name(name.clone());
            pair.set_value(value.as_ref().to_owned());
            pair
        })
        .collect();
    pairs.extend(desc.const_label_pairs.iter().cloned());
    pairs.sort();
    Ok(pairs)
}

/// One counter series. Cheap to clone: the clones are the same series.
#[derive(Clone)]
pub struct Counter(Arc<CounterCells>);

struct CounterCells {
    labels: Vec<proto::LabelPair>,
    shards: Box<[Padded<AtomicU64>]>,
}

impl Counter {
    fn new(labels: Vec<proto::LabelPair>) -> Self {
        Counter(Arc::new(CounterCells {
            labels,
            shards: padded(|| AtomicU64::new(0)),
        }))
    }

    pub fn inc(&self) {
        self.inc_by(1);
    }

    pub fn inc_by(&self, n: u64) {
        self.0.shards[shard()].0.fetch_add(n, Relaxed);
    }

    /// The sum of the shards.
    pub fn get(&self) -> u64 {
        self.0
            .shards
            .iter()
            .map(|s| s.0.load(Relaxed))
            .fold(0, u64::wrapping_add)
    }
}

impl Metric for Counter {
    fn metric(&self) -> proto::Metric {
        let mut counter = proto::Counter::default();
        // As prometheus's IntCounter reports itself.
        counter.set_value(self.get() as f64);
        let mut m = proto::Metric::from_label(self.0.labels.clone());
        m.set_counter(counter);
        m
    }
}

#[derive(Clone)]
pub struct CounterBuilder;

impl MetricVecBuilder for CounterBuilder {
    type M = Counter;
    type P = Opts;

    fn build<V: AsRef<str>>(&self, opts: &Opts, values: &[V]) -> prometheus::Result<Counter> {
        Ok(Counter::new(label_pairs(opts, values)?))
    }
}

/// Counter series by label values: `with_label_values` finds (or makes) one.
pub type CounterVec = MetricVec<CounterBuilder>;

pub fn counter_vec(opts: Opts, labels: &[&str]) -> prometheus::Result<CounterVec> {
    let opts = opts.variable_labels(labels.iter().map(|l| (*l).to_owned()).collect());
    MetricVec::create(proto::MetricType::COUNTER, CounterBuilder, opts)
}

/// The upper bounds of a duration histogram's buckets, in seconds: 0.1 ms to 10 s.
pub const SECONDS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The same bounds in nanoseconds, to place a `Duration` without floating point (a unit test
/// checks each against its bound in seconds).
const NANOS: [u64; SECONDS.len()] = {
    let mut nanos = [0; SECONDS.len()];
    let mut i = 0;
    while i < SECONDS.len() {
        // Every bound is a whole number of nanoseconds: rounded, not truncated.
        nanos[i] = (SECONDS[i] * 1e9 + 0.5) as u64;
        i += 1;
    }
    nanos
};

/// One shard of a histogram: a count per bucket (the last: above every bound) and the sum.
struct HistogramShard {
    buckets: [AtomicU64; NANOS.len() + 1],
    sum_nanos: AtomicU64,
}

/// One duration histogram series, with the [`SECONDS`] buckets. Cheap to clone: the clones are
/// the same series.
#[derive(Clone)]
pub struct Histogram(Arc<HistogramCells>);

struct HistogramCells {
    labels: Vec<proto::LabelPair>,
    shards: Box<[Padded<HistogramShard>]>,
}

impl Histogram {
    fn new(labels: Vec<proto::LabelPair>) -> Self {
        Histogram(Arc::new(HistogramCells {
            labels,
            shards: padded(|| HistogramShard {
                buckets: std::array::from_fn(|_| AtomicU64::new(0)),
                sum_nanos: AtomicU64::new(0),
            }),
        }))
    }

    pub fn observe(&self, took: Duration) {
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        // The first bucket whose bound is at least `nanos` (`le` means "less than or equal").
        let bucket = NANOS.partition_point(|bound| *bound < nanos);
        let shard = &self.0.shards[shard()].0;
        shard.buckets[bucket].fetch_add(1, Relaxed);
        shard.sum_nanos.fetch_add(nanos, Relaxed);
    }
}

impl Metric for Histogram {
    fn metric(&self) -> proto::Metric {
        let mut counts = [0u64; NANOS.len() + 1];
        let mut sum_nanos = 0u64;
        for shard in self.0.shards.iter() {
            for (count, cell) in counts.iter_mut().zip(&shard.0.buckets) {
                *count = count.wrapping_add(cell.load(Relaxed));
            }
            sum_nanos = sum_nanos.wrapping_add(shard.0.sum_nanos.load(Relaxed));
        }
        let mut cumulative = 0u64;
        let buckets = SECONDS
            .iter()
            .zip(counts)
            .map(|(bound, count)| {
                cumulative = cumulative.wrapping_add(count);
                let mut b = proto::Bucket::default();
                b.set_upper_bound(*bound);
                b.set_cumulative_count(cumulative);
                b
            })
            .collect();
        let mut h = proto::Histogram::default();
        // The encoder writes `+Inf` with the count: every observation, the last bucket's too.
        h.set_sample_count(cumulative.wrapping_add(counts[NANOS.len()]));
        h.set_sample_sum(sum_nanos as f64 / 1e9);
        h.set_bucket(buckets);
        let mut m = proto::Metric::from_label(self.0.labels.clone());
        m.set_histogram(h);
        m
    }
}

#[derive(Clone)]
pub struct HistogramBuilder;

impl MetricVecBuilder for HistogramBuilder {
    type M = Histogram;
    type P = HistogramOpts;

    fn build<V: AsRef<str>>(&self, opts: &HistogramOpts, values: &[V]) -> prometheus::Result<Histogram> {
        Ok(Histogram::new(label_pairs(opts, values)?))
    }
}

/// Duration histogram series by label values.
pub type HistogramVec = MetricVec<HistogramBuilder>;

pub fn histogram_vec(name: &str, help: &str, labels: &[&str]) -> prometheus::Result<HistogramVec> {
    let opts = HistogramOpts::new(name, help)
        .buckets(SECONDS.to_vec())
        .variable_labels(labels.iter().map(|l| (*l).to_owned()).collect());
    MetricVec::create(proto::MetricType::HISTOGRAM, HistogramBuilder, opts)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use prometheus::{Encoder, HistogramOpts, IntCounterVec, Opts, Registry, TextEncoder};

    use super::*;

    fn text(registry: &Registry) -> String {
        let mut out = Vec::new();
        TextEncoder::new().encode(&registry.gather(), &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_counter_adds_up_the_increments_of_more_threads_than_it_has_shards() {
        let family = counter_vec(Opts::new("c_total", "help"), &["route"]).unwrap();
        let threads = *SHARDS * 3;
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    let c = family.with_label_values(&["/a"]);
                    for _ in 0..1_000 {
                        c.inc();
                    }
                    c.inc_by(5);
                });
            }
        });
        assert_eq!(family.with_label_values(&["/a"]).get(), threads as u64 * 1_005);
    }

    #[test]
    fn the_bounds_in_nanoseconds_are_the_bounds_in_seconds() {
        assert_eq!(NANOS[0], 100_000);
        assert_eq!(NANOS[1], 250_000);
        assert_eq!(NANOS[NANOS.len() - 1], 10_000_000_000);
        for (nanos, seconds) in NANOS.iter().zip(SECONDS) {
            assert_eq!(Duration::from_nanos(*nanos), Duration::from_secs_f64(seconds));
        }
    }

    #[test]
    fn the_shards_of_a_series_sit_on_cache_lines_of_their_own() {
        let c = Counter::new(Vec::new());
        let h = Histogram::new(Vec::new());
        for addresses in [
            c.0.shards
                .iter()
                .map(|s| s as *const _ as usize)
                .collect::<Vec<_>>(),
            h.0.shards.iter().map(|s| s as *const _ as usize).collect(),
        ] {
            assert_eq!(addresses.len(), *SHARDS);
            for pair in addresses.windows(2) {
                assert_eq!(pair[0] % 128, 0);
                assert!(pair[1] - pair[0] >= 128);
            }
        }
    }

    #[test]
    fn counters_are_written_as_prometheus_writes_its_own() {
        let (ours, theirs) = (Registry::new(), Registry::new());
        let a = counter_vec(Opts::new("req_total", "Requests."), &["route", "method"]).unwrap();
        let b = IntCounterVec::new(Opts::new("req_total", "Requests."), &["route", "method"]).unwrap();
        ours.register(Box::new(a.clone())).unwrap();
        theirs.register(Box::new(b.clone())).unwrap();
        for (labels, n) in [(["/b", "GET"], 3), (["/a", "POST"], 1), (["/a", "GET"], 2)] {
            a.with_label_values(&labels).inc_by(n);
            b.with_label_values(&labels).inc_by(n);
        }
        assert_eq!(text(&ours), text(&theirs));
    }

    #[test]
    fn histograms_are_written_as_prometheus_writes_its_own() {
        let (ours, theirs) = (Registry::new(), Registry::new());
        let a = histogram_vec("took_seconds", "Time.", &["op"]).unwrap();
        let b = prometheus::HistogramVec::new(
            HistogramOpts::new("took_seconds", "Time.").buckets(SECONDS.to_vec()),
            &["op"],
        )
        .unwrap();
        ours.register(Box::new(a.clone())).unwrap();
        theirs.register(Box::new(b.clone())).unwrap();
        // On a bound (`le` includes it), just above one, nothing at all, above every bound.
        let observations = [
            ("load", Duration::from_millis(1)),
            ("load", Duration::from_nanos(1_000_001)),
            ("load", Duration::ZERO),
            ("load", Duration::from_micros(300)),
            ("create", Duration::from_secs(11)),
            ("create", Duration::from_millis(40)),
        ];
        std::thread::scope(|s| {
            for (op, took) in observations {
                let (a, b) = (&a, &b);
                s.spawn(move || {
                    a.with_label_values(&[op]).observe(took);
                    b.with_label_values(&[op]).observe(took.as_secs_f64());
                });
            }
        });
        let without_sums = |t: String| {
            t.lines()
                .filter(|l| !l.contains("_sum"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        let (ours, theirs) = (text(&ours), text(&theirs));
        assert_eq!(without_sums(ours.clone()), without_sums(theirs));
        assert!(
            ours.contains(r#"took_seconds_bucket{op="load",le="0.001"} 3"#),
            "{ours}"
        );
        assert!(
            ours.contains(r#"took_seconds_bucket{op="create",le="+Inf"} 2"#),
            "{ours}"
        );
        // The sums, added in nanoseconds rather than seconds.
        assert!(
            ours.contains(r#"took_seconds_sum{op="load"} 0.002300001"#),
            "{ours}"
        );
        assert!(ours.contains(r#"took_seconds_sum{op="create"} 11.04"#), "{ours}");
    }
}
