//! Compaction levels and retention settings (REPLICA_LAYOUT.md §1.1).

use std::time::Duration;

use super::CompactError;

/// Default intervals of levels 1, 2 and 3: 30 s, 5 min, 1 h.
pub const DEFAULT_LEVEL_INTERVALS: [Duration; 3] = [
    Duration::from_secs(30),
    Duration::from_secs(5 * 60),
    Duration::from_secs(60 * 60),
];
/// Highest configurable compaction level; level 9 holds snapshots.
pub const MAX_COMPACTION_LEVEL: u8 = 8;
/// Default period of level-9 snapshots: 24 h.
pub const DEFAULT_SNAPSHOT_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);
/// Default age after which snapshots are deleted: 24 h.
pub const DEFAULT_SNAPSHOT_RETENTION: Duration = Duration::from_secs(24 * 60 * 60);
/// Default time level-0 files are kept once compacted into level 1: 5 min.
pub const DEFAULT_L0_RETENTION: Duration = Duration::from_secs(5 * 60);
/// Default period of the level-0 retention check: 15 s.
pub const DEFAULT_L0_RETENTION_CHECK_INTERVAL: Duration = Duration::from_secs(15);

/// One compaction level: its number and how often it merges the level below.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompactionLevel {
    /// 1..=[`MAX_COMPACTION_LEVEL`].
    pub level: u8,
    /// Period of its schedule, aligned to wall-clock multiples.
    pub interval: Duration,
}

/// Everything the compaction and retention schedules need. Built once,
/// validated, then read-only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompactionConfig {
    levels: Vec<CompactionLevel>,
    /// Period of level-9 snapshots.
    pub snapshot_interval: Duration,
    /// Snapshots older than this are deleted (the newest one never is).
    pub snapshot_retention: Duration,
    /// How long level-0 files stay after level 1 covers them; zero disables
    /// level-0 deletion.
    pub l0_retention: Duration,
    /// Period of the level-0 retention check.
    pub l0_retention_check_interval: Duration,
    /// `false`: never delete remote files (local copies are still removed).
    pub retention_enabled: bool,
}

impl Default for CompactionConfig {
    /// Litestream's defaults: levels 1–3 at 30 s, 5 min, 1 h; daily
    /// snapshots kept 24 h; level 0 kept 5 min after compaction, checked
    /// every 15 s; retention on.
    fn default() -> Self {
        let levels = DEFAULT_LEVEL_INTERVALS
            .iter()
            .zip(1u8..)
            .map(|(&interval, level)| CompactionLevel { level, interval })
            .collect();
        CompactionConfig {
            levels,
            snapshot_interval: DEFAULT_SNAPSHOT_INTERVAL,
            snapshot_retention: DEFAULT_SNAPSHOT_RETENTION,
            l0_retention: DEFAULT_L0_RETENTION,
            l0_retention_check_interval: DEFAULT_L0_RETENTION_CHECK_INTERVAL,
            retention_enabled: true,
        }
    }
}

impl CompactionConfig {
    /// The defaults with levels 1..=N taking `intervals` in order. Fails when
    /// more than [`MAX_COMPACTION_LEVEL`] are given or one is zero.
    pub fn with_level_intervals(intervals: &[Duration]) -> Result<Self, CompactError> {
        if intervals.len() > usize::from(MAX_COMPACTION_LEVEL) {
            return Err(CompactError::Config(format!(
                "{} compaction levels configured; at most {MAX_COMPACTION_LEVEL} are allowed",
                intervals.len()
            )));
        }
        let mut levels = Vec::with_capacity(intervals.len());
        for (&interval, level) in intervals.iter().zip(1u8..) {
            if interval.is_zero() {
                return Err(CompactError::Config(format!(
                    "compaction level {level} needs a positive interval"
                )));
            }
            levels.push(CompactionLevel { level, interval });
        }
        Ok(CompactionConfig {
            levels,
            ..CompactionConfig::default()
        })
    }

    /// The configured levels 1..=N, in order.
    pub fn levels(&self) -> &[CompactionLevel] {
        &self.levels
    }

    /// The interval of `level`, if configured.
    pub fn interval(&self, level: u8) -> Option<Duration> {
        self.levels
            .iter()
            .find(|l| l.level == level)
            .map(|l| l.interval)
    }

    /// The highest configured level (0 when none is).
    pub fn max_level(&self) -> u8 {
        self.levels.last().map_or(0, |l| l.level)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_spec_table() {
        let c = CompactionConfig::default();
        let got: Vec<_> = c.levels().iter().map(|l| (l.level, l.interval)).collect();
        assert_eq!(
            got,
            [
                (1, Duration::from_secs(30)),
                (2, Duration::from_secs(300)),
                (3, Duration::from_secs(3600)),
            ]
        );
        assert_eq!(c.snapshot_interval, Duration::from_secs(86_400));
        assert_eq!(c.snapshot_retention, Duration::from_secs(86_400));
        assert_eq!(c.l0_retention, Duration::from_secs(300));
        assert_eq!(c.l0_retention_check_interval, Duration::from_secs(15));
        assert!(c.retention_enabled);
        assert_eq!(c.max_level(), 3);
        assert_eq!(c.interval(2), Some(Duration::from_secs(300)));
        assert_eq!(c.interval(4), None);
    }

    #[test]
    fn level_lists_are_validated() {
        let eight = [Duration::from_secs(1); 8];
        let c = CompactionConfig::with_level_intervals(&eight).unwrap();
        assert_eq!(c.max_level(), 8);
        let nine = [Duration::from_secs(1); 9];
        assert!(CompactionConfig::with_level_intervals(&nine).is_err());
        let zero = [Duration::from_secs(1), Duration::ZERO];
        let err = CompactionConfig::with_level_intervals(&zero).unwrap_err();
        assert!(err.to_string().contains("level 2"), "{err}");
        let none = CompactionConfig::with_level_intervals(&[]).unwrap();
        assert_eq!(none.max_level(), 0);
    }
}
