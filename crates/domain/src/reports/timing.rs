//! When a schedule is due: its slots are local times in its time zone. A local time that does
//! not exist (the hour skipped when clocks go forward) runs at the first minute that does; a
//! local time that happens twice (when clocks go back) runs at the first. A monthly schedule
//! for a day a month lacks (29–31) runs on that month's last day.

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc, Weekday,
};
use chrono_tz::Tz;

use super::Frequency;

/// When a schedule is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub frequency: Frequency,
    /// Local time of day.
    pub time: NaiveTime,
    /// Weekly schedules only.
    pub weekday: Option<Weekday>,
    /// Monthly schedules only: 1–31.
    pub day_of_month: Option<u32>,
    pub time_zone: Tz,
}

/// Days searched for a slot: more than a month and a half, so a monthly slot is always found.
const SEARCH_DAYS: i64 = 70;

fn last_day_of_month(date: NaiveDate) -> u32 {
    let (year, month) = if date.month() == 12 {
        (date.year() + 1, 1)
    } else {
        (date.year(), date.month() + 1)
    };
    NaiveDate::from_ymd_opt(year, month, 1)
        .and_then(|first| first.pred_opt())
        .map_or(28, |last| last.day())
}

impl Timing {
    /// Whether the schedule runs on this local date.
    fn runs_on(&self, date: NaiveDate) -> bool {
        match self.frequency {
            Frequency::Daily => true,
            Frequency::Weekly => self.weekday.is_none_or(|day| date.weekday() == day),
            Frequency::Monthly => {
                let wanted = self.day_of_month.unwrap_or(1);
                date.day() == wanted.min(last_day_of_month(date))
            }
        }
    }

    /// The instant of the slot on a local date: the earlier of a repeated local time, the first
    /// existing minute after a skipped one.
    fn instant_on(&self, date: NaiveDate) -> DateTime<Utc> {
        let local = NaiveDateTime::new(date, self.time);
        let mut probe = local;
        // The first existing minute after a skipped time. Gaps are an hour or less in practice
        // (some zones once skipped a whole day: then the next day's minute).
        for _ in 0..(26 * 60) {
            match self.time_zone.from_local_datetime(&probe) {
                LocalResult::Single(at) => return at.with_timezone(&Utc),
                LocalResult::Ambiguous(earlier, _) => return earlier.with_timezone(&Utc),
                LocalResult::None => probe += Duration::minutes(1),
            }
        }
        // Unreachable with real zones; read the local time as UTC rather than fail.
        Utc.from_utc_datetime(&local)
    }

    fn local_date(&self, at: DateTime<Utc>) -> NaiveDate {
        at.with_timezone(&self.time_zone).date_naive()
    }

    /// The latest slot at or before `at`.
    pub fn slot_at_or_before(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        let start = self.local_date(at) + Duration::days(1);
        (0..SEARCH_DAYS)
            .filter_map(|back| start.checked_sub_signed(Duration::days(back)))
            .filter(|date| self.runs_on(*date))
            .map(|date| self.instant_on(date))
            .find(|slot| *slot <= at)
            .unwrap_or(at)
    }

    /// The earliest slot after `at`.
    pub fn slot_after(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        let start = self.local_date(at) - Duration::days(1);
        (0..SEARCH_DAYS)
            .filter_map(|ahead| start.checked_add_signed(Duration::days(ahead)))
            .filter(|date| self.runs_on(*date))
            .map(|date| self.instant_on(date))
            .find(|slot| *slot > at)
            .unwrap_or(at + Duration::days(1))
    }

    /// The start of the window a run at `slot` covers: the slot before it (a day, a week or
    /// a month earlier, as the local calendar counts).
    pub fn window_start(&self, slot: DateTime<Utc>) -> DateTime<Utc> {
        self.slot_at_or_before(slot - Duration::seconds(1))
    }
}
