//! The UTC calendar date and time of a Unix time (H. Hinnant's `civil_from_days`), for the run
//! column of the summary table (`report`) and the run line of `tools/bench-report`, which
//! includes this file.

/// A UTC date and time to the minute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Utc {
    pub year: i64,
    pub month: i64,
    pub day: i64,
    pub hour: u64,
    pub minute: u64,
}

impl Utc {
    /// The date and time `secs` seconds after the Unix epoch.
    pub fn from_unix(secs: u64) -> Utc {
        let days = (secs / 86_400) as i64;
        let (hour, minute) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        Utc { year, month, day, hour, minute }
    }
}
